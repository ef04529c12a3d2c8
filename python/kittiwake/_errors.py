"""Exceptions the SDK raises."""


class KittiwakeError(Exception):
    """A request to the workspace failed; ``status`` and ``code`` say how."""

    def __init__(self, message, status=None, code=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class UserErrorException(KittiwakeError):
    """The caller asked for something that cannot be done (AzureML's name for it)."""


class LoggingError(KittiwakeError):
    """Logged values could not be delivered to the server; they are kept in ``unsent``."""

    def __init__(self, message, unsent=0):
        super().__init__(message)
        self.unsent = unsent


class ActivityFailedException(KittiwakeError):
    """A submitted run ended Failed (raised by ``wait_for_completion``); ``details`` has its details."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.details = details or {}
