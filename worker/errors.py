"""The one error hierarchy of cable-ingest.

    CableIngestError
    ├── ParseError            the text is not a cable at all (parsing cannot produce a record)
    ├── ValidationError       a document does not satisfy its JSON Schema
    ├── ConfigurationError    a setting is missing or malformed
    ├── IntegrityError        stored data does not match its sha256
    ├── ExchangeError         an export cannot be written or restored (file, format, database)
    ├── UnavailableError      the broker or the database did not answer within the allowed wait
    └── SinkError             a sink could not take a batch
        ├── TransientSinkError    worth retrying (timeouts, 5xx, connection refused)
        └── PermanentSinkError    retrying will not help (4xx, constraint violations)

Messages say what was expected and what arrived, so an operator can act on them at 3 a.m.
"""

from __future__ import annotations

from dataclasses import dataclass


class CableIngestError(Exception):
    """Base class of every error raised on purpose by cable-ingest."""


class ParseError(CableIngestError, ValueError):
    """The input is not a cable: no record can be made from it."""


@dataclass(frozen=True, slots=True)
class SchemaViolation:
    """One schema error: where in the document (JSON pointer) and what is wrong."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class ValidationError(CableIngestError, ValueError):
    """A document failed its JSON Schema; ``violations`` lists every error found."""

    def __init__(self, schema: str, violations: list[SchemaViolation]) -> None:
        self.schema = schema
        self.violations = violations
        first = violations[0] if violations else SchemaViolation("", "unknown error")
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        super().__init__(f"{schema}: {first.path or '/'}: {first.message}{more}")


class ConfigurationError(CableIngestError, ValueError):
    """A configuration value is missing or malformed."""


class IntegrityError(CableIngestError):
    """Stored data does not hash to the sha256 it is addressed by: it was altered or damaged."""


class ExchangeError(CableIngestError, ValueError):
    """An export cannot be written or restored: the database is missing, not migrated or not
    empty, or the file is malformed, truncated or of another format version (with its line)."""


class UnavailableError(CableIngestError):
    """A dependency (the broker or the database) did not answer within the configured wait;
    ``what`` names it ("broker", "database") and ``url`` is its redacted address."""

    def __init__(self, what: str, url: str, message: str) -> None:
        super().__init__(message)
        self.what = what
        self.url = url


class SinkError(CableIngestError):
    """A sink could not take a batch."""


class TransientSinkError(SinkError):
    """A sink failure worth retrying later; ``retry_after`` is the peer's own wish, in seconds
    (an HTTP 429's Retry-After), which the retry honours instead of its backoff when given."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSinkError(SinkError):
    """A sink failure that retrying will not fix."""
