"""One error hierarchy. Each error has a machine-readable code and an HTTP status; the base
handler turns it into ``{"error_code": ..., "message": ...}``. Messages say what to do."""

from __future__ import annotations


class TrainError(Exception):
    code = "train_error"
    status = 500

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict:
        body = {"error_code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidRequest(TrainError):
    code = "invalid_request"
    status = 400


class NotFound(TrainError):
    code = "not_found"
    status = 404


class Conflict(TrainError):
    code = "conflict"
    status = 409


class SnapshotTooLarge(InvalidRequest):
    code = "snapshot_too_large"


class UnknownComputeTarget(InvalidRequest):
    code = "unknown_compute_target"


class PathEscapes(TrainError):
    code = "path_escapes"
    status = 403


class WorkspaceLocked(TrainError):
    code = "workspace_locked"
    status = 409


class MethodNotAllowed(TrainError):
    code = "method_not_allowed"
    status = 405
