"""netlang.backends in a source checkout.

The wheel installs the repository's top-level backends/ folder as netlang/backends/ (pyproject's
wheel `sources`), so an installed netlang has a real subpackage and nothing here runs. In a
checkout (the editable install, tests and tools run from the repository) backends/ sits beside
netlang/; a finder that answers for the one name netlang.backends with that folder makes it the
same package under the same name as in the wheel, imported once, and the top-level name
`backends` stays free for a user's own package.

Why a finder and not a symlink netlang/backends -> ../backends: a symlink is a plain text file in
a Windows checkout and in some archive tools, and the wheel would need it to be followed; hatch's
editable install cannot map a folder to another prefix either, so it puts the repository on
sys.path (dev-mode-dirs) and this finder does the mapping, for every tool and platform alike.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

NAME = "netlang.backends"
_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent


class _CheckoutBackends:
    """Finds netlang.backends at <checkout>/backends; its submodules then come from its __path__."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != NAME:
            return None
        folder = _ROOT / "backends"
        return importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])


def install() -> None:
    # Only in netlang's own checkout (its grammar beside it): installed, netlang's parent is
    # site-packages, where a folder named backends is somebody else's package.
    if (_HERE / "backends").is_dir() or not (_ROOT / "grammars" / "netlang.lark").is_file() \
            or not (_ROOT / "backends" / "__init__.py").is_file():
        return
    if not any(isinstance(f, _CheckoutBackends) for f in sys.meta_path):
        sys.meta_path.append(_CheckoutBackends())
