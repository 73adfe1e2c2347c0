"""The bundled zoo from the command line: a file named there that is not in the working
directory is the zoo's file of that name (the lookup an `import` makes), and a bare network name
is the zoo file that declares it."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from . import ast
from .elaborate import _is_file as _exists, _present, bundled_architectures, resolve_path
from .errors import NetlangImportError, did_you_mean
from .parser import parse
from .source import read_source


class Declared(NamedTuple):
    """A network a file declares: its name, and the parameters it needs (a template's)."""
    name: str
    needs: tuple[str, ...]


def declared(path: Path) -> list[Declared]:
    """The networks of the .net file at `path`, read from its syntax alone (nothing elaborated)."""
    tree = parse(read_source(path), str(path))
    return [Declared(d.name, tuple(p.name for p in d.params if p.default is None)
                     if isinstance(d, ast.NetworkDecl) else ())
            for d in tree.decls if isinstance(d, (ast.NetworkDecl, ast.NetworkInst))]


def zoo_files(folder: Path | None = None) -> list[Path]:
    folder = folder or bundled_architectures()
    return sorted(folder.glob("*.net")) if folder is not None else []


def index(folder: Path | None = None) -> dict[str, Path]:
    """Network name -> the file of the zoo (or of `folder`) that declares it; parsing each file
    once (about a second for the whole zoo) is cheaper than any cache to keep current."""
    out: dict[str, Path] = {}
    for path in zoo_files(folder):
        for net in declared(path):
            out.setdefault(net.name, path)
    return out


class Located(NamedTuple):
    path: Path
    network: str | None     # the network a bare network name picked
    note: str | None        # what to tell the user on stderr, when the file is not the one named


def locate(name: str) -> Located:
    """The .net file a command line's FILE means: that file; else the zoo's file of that name;
    else, for a bare name, the zoo file that declares the network so named (or `NAME.net`)."""
    here = Path(name)
    if _present(here):
        return Located(here, None, None)
    found = resolve_path(name, Path.cwd())
    if _exists(found):
        return Located(found, None, f"netlang: {name} is not in this folder; using the bundled zoo's {found}")
    if here.suffix != ".net" and len(here.parts) == 1:
        networks = index()
        if name in networks:
            return Located(networks[name], name, f"netlang: network {name} is the bundled zoo's {networks[name]}")
        found = resolve_path(name + ".net", Path.cwd())
        if _exists(found):
            return Located(found, None, f"netlang: using {found}")
        hint = did_you_mean(name, networks) or "`netlang zoo --list` lists the bundled zoo's networks"
        raise NetlangImportError(f"no such file or network of the zoo: {name}", None, hint=hint)
    close = did_you_mean(here.name, [p.name for p in zoo_files()]) if here.suffix == ".net" else None
    raise NetlangImportError(f"no such file: {name}", None, hint=close and f"{close} (of the bundled zoo)")

