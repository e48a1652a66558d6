"""The installed tcnet's version string, in a module of its own so that lower layers (the store
writes it into every file it creates) read it without importing the package face, `tcnet`, which
imports the run layer above them."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tcnet")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
