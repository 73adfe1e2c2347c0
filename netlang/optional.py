"""The optional dependencies, imported where a backend first needs them.

netlang itself needs only lark and networkx; the torch backend needs torch and the Triton backend
triton as well, each through a pip extra. Without one, the user sees which extra to install, not
a bare ModuleNotFoundError from deep inside a backend.
"""
from __future__ import annotations

import importlib
import itertools

from .errors import NetlangDependencyError


# The oldest release of each that the backends run on: pyproject's lower bounds (a test holds
# them equal; docs/install.md says which API sets each)
MINIMUM = {"torch": (2, 3), "triton": (3, 4)}


def require(*modules: str, needs: str, extra: str):
    """Import each of `modules` (for `needs`, a backend) or raise NetlangDependencyError naming
    the pip extra that installs them, or saying that the one installed is older than MINIMUM;
    returns the last one."""
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
        least = MINIMUM.get(module)
        have = release(getattr(found, "__version__", ""))
        if least is not None and have is not None and have < least:
            raise NetlangDependencyError(
                f"{needs} needs {module} {'.'.join(map(str, least))} or newer; this is {found.__version__}: "
                f"pip install -U 'netlang[{extra}]'")
    return found


def release(version: str) -> tuple[int, int] | None:
    """(major, minor) of a version string ("2.3.1+cu121" -> (2, 3)), or None if it has none."""
    parts = version.split(".")
    if len(parts) < 2 or not parts[0].isdigit():
        return None
    minor = "".join(itertools.takewhile(str.isdigit, parts[1]))
    return (int(parts[0]), int(minor)) if minor else None
