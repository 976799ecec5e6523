"""The few error types syncer raises. Every message names the object or file it is about.

Expected failures never surface as tracebacks: the CLI prints `str(error)` and exits with
`exit_code`. Errors from the Kubernetes client are wrapped (the original is `__cause__`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SyncerError(Exception):
    """Base of all expected failures; `exit_code` is what the CLI exits with."""

    exit_code = 2


class ConfigError(SyncerError):
    """Bad command-line arguments or app configuration."""


class SourceError(SyncerError):
    """The source could not be fetched: unreachable, revision or path not found, auth."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, with where it is (`file:line` or an object identity)."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class RenderError(SyncerError):
    """The manifests are invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"invalid manifests ({len(problems)} {noun}):\n{lines}")


class RenderTooLarge(RenderError):
    """A render passed one of the per-app bounds (`RenderLimits.max_total_bytes`,
    `max_objects`): reading stopped there. Nothing gets better until Git or the operator's
    limit changes, so the daemon reports the App `Stalled` with this `condition` reason."""

    condition = "RenderTooLarge"

    def __init__(self, problems: list[Problem], *, bound: str, limit: int) -> None:
        super().__init__(problems)
        self.bound = bound
        """Which bound: "bytes" or "objects"."""
        self.limit = limit
        self.args = ("; ".join(str(problem) for problem in problems),)

    def __str__(self) -> str:
        return str(self.args[0])


class ClusterError(SyncerError):
    """The API server refused a request or could not be reached.

    `status` is the HTTP status (0 when there was no response); `subject` names the object
    or resource the request was about; `reason` and `details` are the server's `Status`
    fields (details holds `causes`: one per invalid field), so callers decide on data, not
    on message text.
    """

    def __init__(
        self, subject: str, message: str, *, status: int = 0, reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        self.subject = subject
        self.message = message
        self.status = status
        self.reason = reason
        self.details = details or {}
        super().__init__(f"{subject}: {message}" if subject else message)

    @property
    def causes(self) -> list[dict[str, Any]]:
        causes = self.details.get("causes")
        return [c for c in causes if isinstance(c, dict)] if isinstance(causes, list) else []

    def field_problems(self) -> list[str]:
        """`field: message` for each of the server's causes (`message` alone for a cause
        that names no field): the field paths and, for a CRD's `x-kubernetes-validations`
        rule, the rule's message, as the server's Status gives them."""
        problems: list[str] = []
        for cause in self.causes:
            message = str(cause.get("message") or cause.get("reason") or "").strip()
            where = str(cause.get("field") or "").strip()
            if message or where:
                problems.append(f"{where}: {message}" if where and message else where or message)
        return problems

    def about_manifest(self, origin: object) -> ClusterError:
        """This error as reported for the manifest at `origin` (`file:line`): the same type,
        status, reason and details, its message made of the server's causes (the whole
        message when it gave none) followed by where the manifest is."""
        problems = self.field_problems()
        text = (f"rejected by the API server ({origin}): " + "; ".join(problems)) if problems \
            else f"{self.message} ({origin})"
        located = type(self)(self.subject, text, status=self.status, reason=self.reason, details=self.details)
        located.__cause__ = self
        return located


class NotFound(ClusterError):
    """HTTP 404."""


class Conflict(ClusterError):
    """HTTP 409: an apply conflict with another field manager, or an update race."""


class Forbidden(ClusterError):
    """HTTP 403: the credentials may not do this."""


class Invalid(ClusterError):
    """HTTP 422 (or 400): the object fails validation, e.g. an immutable field changed."""

    def immutable_fields(self) -> list[str]:
        """The fields the server refused to change because they are immutable. Kubernetes has
        no reason code for this: its validation reports each one as a `FieldValueInvalid`
        cause whose message ends with apimachinery's fixed text "field is immutable"."""
        return [str(c.get("field", "")) for c in self.causes
                if c.get("reason") == "FieldValueInvalid" and str(c.get("message", "")).endswith("field is immutable")]


class Unavailable(ClusterError):
    """The API server is unreachable or overloaded after retries (connection errors, 429, 5xx)."""


class ValidationFailed(SyncerError):
    """The server rejected objects during the dry-run before any write.

    Failures are sorted by object and message: requests run concurrently, and a repeated
    failure must read the same so that the daemon recognises it (no new Event or status)."""

    def __init__(self, failures: list[ClusterError]) -> None:
        self.failures = sorted(failures, key=lambda failure: (failure.subject, failure.message))
        failures = self.failures
        lines = "\n".join(f"  {f}" for f in failures)
        super().__init__(
            f"validation failed for {len(failures)} object(s); nothing was changed:\n{lines}"
        )


class LockHeld(SyncerError):
    """Another sync of the same app holds its lock."""


class LockLost(SyncerError):
    """The sync can no longer prove that it holds its app's lock: it must not write again."""
