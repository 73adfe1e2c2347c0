"""netlang: a declarative graph language and compiler for convolutional networks.

Importing netlang never imports torch or triton; backends load them when asked.
"""
from .api import Network, load, loads
from .errors import NetlangError, SourceLoc

__all__ = ["Network", "NetlangError", "SourceLoc", "load", "loads"]
__version__ = "0.1.0"
