"""One hierarchy for everything that can go wrong in Hanlin.

Every error carries a message a user can act on ("what happened — what to do
next"). Front ends map `HanlinError` in exactly one place each: a dialog in the
desktop app, `window/showMessage` in the language server, one line on stderr
and a non-zero exit in the command line. Anything that is not a `HanlinError`
is a bug and is allowed to surface as one.
"""

from __future__ import annotations


class HanlinError(Exception):
    """Base of every error Hanlin expects and explains.

    `hint` is the "what to do next" part, kept separate so a GUI can show it on
    its own line; `str(error)` joins both for the command line.
    """

    exit_code: int = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} — {self.hint}"
        return self.message


class Cancelled(HanlinError):
    """The user (or a newer request) cancelled the operation. Not a failure."""

    exit_code = 130

    def __init__(self, message: str = "Cancelled.", hint: str | None = None) -> None:
        super().__init__(message, hint)


class SettingsError(HanlinError):
    """The settings file could not be read or written."""


class CatalogError(HanlinError):
    """A catalog file is malformed, or an entry is invalid."""


class UnknownModelError(HanlinError):
    """No catalog entry or installed model has that id."""

    exit_code = 2


class ModelNotInstalledError(HanlinError):
    """The model exists in the catalog but is not on disk yet."""


class ModelFileError(HanlinError):
    """A file is not a usable GGUF: not GGUF at all, truncated, or unsupported."""


class ModelLoadError(HanlinError):
    """llama.cpp refused to load a model file."""


class GenerationError(HanlinError):
    """Generation failed part-way (context full beyond repair, decode error)."""


class DownloadError(HanlinError):
    """A download failed; the partial file is kept unless it is known bad."""


class VerificationError(DownloadError):
    """A downloaded file did not match its expected size or sha256."""


class DiskFullError(DownloadError):
    """Not enough free disk space for a download."""


class AuthError(DownloadError):
    """The Hub refused access (gated or private repo)."""


class NotFoundOnHubError(DownloadError):
    """The repo, revision or file does not exist on the Hub."""


class OfflineError(DownloadError):
    """The Hub cannot be reached (offline mode or no network)."""


class BusyError(HanlinError):
    """Another process holds the lock for this operation (e.g. the same download)."""


class HistoryError(HanlinError):
    """The chat history database could not be read or written."""
