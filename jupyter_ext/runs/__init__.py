from .manager import RunManager, SubmitRequest

__all__ = ["RunManager", "SubmitRequest"]
