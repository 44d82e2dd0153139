from .manager import RunManager
from .requests import SubmitRequest

__all__ = ["RunManager", "SubmitRequest"]
