"""Errors radadapt expects and explains.

Every error the CLI can print is a ``RadadaptError`` with a stable ``code`` (``<stage>.<what>``), a one-line
message and, where it helps, a next step (``hint``). Codes are listed in docs/troubleshooting.md; a test checks
that every code raised in the package is documented there. Messages never carry patient data, source paths
inside the archive or raw exception texts from DICOM readers (those can embed paths).
"""

from __future__ import annotations


class RadadaptError(Exception):
    """An expected failure: the CLI prints one line (``error[code]: message``) and exits non-zero."""

    exit_code = 1

    def __init__(self, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line, always
        return f"{self.message}".replace("\n", " ")


class UsageError(RadadaptError):
    """Bad command-line input (missing file, wrong option combination)."""

    exit_code = 2


class ConfigError(RadadaptError):
    """The site config or a schema file is invalid."""

    exit_code = 2


class DataError(RadadaptError):
    """Input data (archive, report CSV, store, labels) cannot be used as given."""

    exit_code = 3


class ModelError(RadadaptError):
    """A checkpoint is missing, of unknown format, truncated, or does not match the architecture."""

    exit_code = 4


class TrainingStopped(RadadaptError):
    """A guard stopped training (NaN, collapse, divergence); the last good checkpoint is kept."""

    exit_code = 5


class PrivacyError(RadadaptError):
    """Something would leave the building that must not (identifier found in an export, key problems)."""

    exit_code = 6
