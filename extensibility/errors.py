"""One exception hierarchy; each failure kind carries its process exit code.

Codes 95-99 are the prebuilt images' contract (docs/exit-codes.md); codes below 95 are ours.
"""

from __future__ import annotations


class ExtensibilityError(Exception):
    """Root of every failure the entrypoint reports as a message, not a traceback."""

    exit_code = 1
    title = "error"

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message}\n  fix: {self.fix}"
        return self.message


class RequirementsNotFound(ExtensibilityError):
    exit_code = 99
    title = "requirements file not found"


class CondaFileNotFound(ExtensibilityError):
    exit_code = 98
    title = "conda file not found"


class LibPathNotFound(ExtensibilityError):
    exit_code = 97
    title = "extra python lib path not found"


class ServerNotFound(ExtensibilityError):
    exit_code = 96
    title = "scoring server not installed"


class InstallFailed(ExtensibilityError):
    exit_code = 95
    title = "installation failed"
    output = ""  # what the installer printed (redacted), to find the user's lines it names


class RequestInvalid(InstallFailed):
    """The request cannot be read (malformed line, bad include); still exit 95 as before."""

    title = "invalid request"


class PolicyViolation(RequestInvalid):
    title = "refused by policy"


class RequestNotSupported(InstallFailed):
    title = "request not supported"


class RequestConflict(InstallFailed):
    title = "conflicts with the scoring server"


class CheckFailed(InstallFailed):
    title = "environment check failed"


class LockTimeout(ExtensibilityError):
    exit_code = 94
    title = "timed out waiting for another start"


class SettingsError(ExtensibilityError):
    exit_code = 93
    title = "invalid setting"


class UnsafeCache(ExtensibilityError):
    """The cache could be changed by another user: what runs would not be ours to vouch for."""

    exit_code = 92
    title = "unsafe cache folder"


class NotPublished(ExtensibilityError):
    """`pull`: the remote cache has no usable environment for the request."""

    exit_code = 91
    title = "not in the remote cache"


class RemoteUnavailable(ExtensibilityError):
    """`push`, `pull`, `ls --remote`, `gc --remote`: the remote cache could not be used.
    (`run` never fails for this: it builds locally.)"""

    exit_code = 90
    title = "remote cache unavailable"


class UsageError(ExtensibilityError):
    exit_code = 2
    title = "usage"


class BuildInterrupted(ExtensibilityError):
    """SIGTERM while building: 128 + 15, as a shell reports a process stopped by SIGTERM."""

    exit_code = 143
    title = "interrupted"
