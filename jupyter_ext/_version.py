"""The version of jupyter-train's server extension (a leaf: importing it imports nothing)."""

__version__ = "0.1.0"
