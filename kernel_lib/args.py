"""Checks of the SDK's own arguments, made before anything is sent to the server. The errors are
the SDK's TrainError (code ``invalid_request``) and also a ValueError or TypeError, so either
``except`` catches them; each message says what to pass instead."""

from __future__ import annotations

import os
import re

from jupyter_ext.paths import NAME_RE

from .client import TrainError

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ArgumentError(TrainError, ValueError):
    """An argument of the right type with a value that cannot work."""

    def __init__(self, message: str):
        super().__init__(message, "invalid_request")


class ArgumentTypeError(TrainError, TypeError):
    """An argument of the wrong type."""

    def __init__(self, message: str):
        super().__init__(message, "invalid_request")


def whole_number(what: str, value, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` if it is an int (not a bool) in [minimum, maximum], else a clear error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{what} must be a whole number >= {minimum}, not {value!r} "
                                f"({type(value).__name__}).")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ArgumentError(f"{what} must be a whole number >= {minimum}{upper}, not {value}.")
    return value


def name(kind: str, value) -> str:
    """An experiment (or other) name the server accepts."""
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{kind} name must be a str, not {value!r} ({type(value).__name__}).")
    if not NAME_RE.fullmatch(value):
        raise ArgumentError(f"{kind} name {value!r} is not valid: use 1-255 letters, digits, '-', '_' "
                            "or '.', starting with a letter or digit.")
    return value


def text(what: str, value) -> str:
    """A str without NUL characters (no process, path or environment can hold one)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{what} must be a str, not {value!r} ({type(value).__name__}).")
    if "\x00" in value:
        raise ArgumentError(f"{what} holds a NUL character (\\x00); remove it.")
    return value


def environment_variables(value) -> dict:
    """A dict of valid variable names to str values."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ArgumentTypeError("environment_variables must be a dict of name -> str, e.g. "
                                f"{{'OMP_NUM_THREADS': '2'}}, not {type(value).__name__}.")
    for key, val in value.items():
        if not isinstance(key, str) or not ENV_NAME.fullmatch(key):
            raise ArgumentError(f"environment_variables: {key!r} is not a valid variable name: use "
                                "letters, digits and '_', not starting with a digit.")
        if not isinstance(val, str):
            raise ArgumentTypeError(f"environment_variables[{key!r}] must be a str (variables hold "
                                    f"text): use str({val!r}).")
        text(f"environment_variables[{key!r}]", val)
    return dict(value)
