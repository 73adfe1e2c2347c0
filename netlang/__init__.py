"""netlang: a declarative graph language and compiler for convolutional networks.

Importing netlang never imports torch or triton; backends load them when asked.
"""
from . import _checkout
from .api import Network, compile, load, loads, lower
from .errors import NetlangError, SourceLoc

__all__ = ["Network", "NetlangError", "SourceLoc", "compile", "load", "loads", "lower"]
__version__ = "0.1.0"

_checkout.install()
