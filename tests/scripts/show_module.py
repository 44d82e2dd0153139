"""Prints where a module comes from and its version: python show_module.py NAME."""
import importlib
import sys

mod = importlib.import_module(sys.argv[1])
print(sys.argv[1], getattr(mod, "__version__", "?"), mod.__file__, flush=True)
