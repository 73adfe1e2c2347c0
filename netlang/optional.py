"""The optional dependencies, imported where a backend first needs them.

netlang itself needs only lark and networkx; the torch backend needs torch and the Triton backend
triton as well, each through a pip extra. Without one, the user sees which extra to install, not
a bare ModuleNotFoundError from deep inside a backend.
"""
from __future__ import annotations

import importlib

from .errors import NetlangDependencyError


def require(*modules: str, needs: str, extra: str):
    """Import each of `modules` (for `needs`, a backend) or raise NetlangDependencyError naming
    the pip extra that installs them; returns the last one."""
    for module in modules:
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError as e:
            # Only the dependency itself missing: an installed torch that fails on a missing
            # piece of its own reports that piece, which no netlang extra would fix.
            if e.name != module:
                raise
            raise NetlangDependencyError(f"{needs} needs {module}, which is not installed: install "
                                         f"netlang[{extra}] (pip install 'netlang[{extra}]')") from None
    return found
