"""The exception tree of Chorus: what went wrong, in the domain's words.

    ChorusError
    ├── BadRequest
    │   ├── ModelNotAvailable            a handle whose provider is not installed or configured
    │   └── IdempotencyKeyReused         an Idempotency-Key sent again with a different request
    ├── Unauthorized
    ├── NotFound
    ├── Conflict
    │   ├── AlreadyCommitted             a step's messages were written before (retry)
    │   ├── RunEnded                     a step committed after its run ended (a straggling worker)
    │   └── LogMoved                     another writer appended to a run's event log first
    ├── RunExpired
    ├── TooManyActiveRuns                the tenant's active-run limit; says when to try again
    ├── StorageUnavailable               the store failed or throttled past its own retries; retryable
    ├── ToolExecutionUnavailable         no executor here isolates one tenant's tools from another's
    └── ModelError                       the model failed; carries a stop reason
        ├── ModelRateLimited             retryable; may carry the provider's retry-after
        ├── ModelTimeout                 retryable
        ├── ModelAuthError               the provider refused the configured credentials
        └── InvalidModelResponse         malformed output; stop reason `invalid_llm_response`

Adapters translate their backend's errors into these at the edge, so the
engine and the API never see `sqlite3` or `botocore` types. The errors know
nothing of HTTP: one table in `chorus.api.errors` gives each its status (and
headers), and one handler renders `{"detail": ...}` (plus any `extra` fields).
"""

from __future__ import annotations

from typing import Any


class ChorusError(Exception):
    """Base of every error Chorus raises on purpose."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(ChorusError):
    """A request the service will never accept as it is."""


class ModelNotAvailable(BadRequest):
    """A model handle names a provider that is not installed or not configured."""


class IdempotencyKeyReused(BadRequest):
    """An Idempotency-Key already used with a different request (answered 422, as a semantic error)."""


class Unauthorized(ChorusError):
    """The request carries no valid API key."""


class NotFound(ChorusError):
    """The tenant has no such resource."""


class Conflict(ChorusError):
    """The request collides with the resource's current state (e.g. a group busy with a run)."""


class AlreadyCommitted(Conflict):
    """A step's output is already in the store: the caller is a retry and must not write again."""


class RunEnded(Conflict):
    """The step's run already ended (cancelled, rolled back, finished): a worker still running it
    after the end must not add a step, nor put back messages a rollback deleted."""


class LogMoved(Conflict):
    """Another writer appended to the run's event log after the seq_id this writer continues from:
    a task still streaming while a cancel ends the run from outside. The writer that must end the
    log anyway starts again from the new end."""


class RunExpired(ChorusError):
    """The run's event log outlived its retention period and is gone."""


class TooManyActiveRuns(ChorusError):
    """The tenant has as many active runs as it may (`Settings.max_active_runs_per_tenant`)."""

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class StorageUnavailable(ChorusError):
    """The store could not complete a call (throttled past its backoff, unreachable): worth retrying later."""


class ToolExecutionUnavailable(ChorusError):
    """Custom tools cannot run safely here (several tenants, no isolating executor); the detail says what is missing."""


class ModelError(ChorusError):
    """The model call failed. `stop_reason` is what the run ends with."""

    stop_reason = "llm_api_error"
    retryable = False

    retry_after_s: float | None = None
    """How long the provider asked us to wait before trying again, when it said."""

    def __init__(
        self,
        detail: str,
        *,
        stop_reason: str | None = None,
        retryable: bool | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(detail)
        if stop_reason is not None:
            self.stop_reason = stop_reason
        if retryable is not None:
            self.retryable = retryable
        self.retry_after_s = retry_after_s


class ModelRateLimited(ModelError):
    retryable = True


class ModelTimeout(ModelError):
    retryable = True


class ModelAuthError(ModelError):
    """The provider rejected the configured credentials (401/403): a configuration fault, never retried."""


class InvalidModelResponse(ModelError):
    stop_reason = "invalid_llm_response"


class ContextTooLong(ModelError):
    """The provider refused the request as longer than the model's context window (OpenAI's 400
    `context_length_exceeded`, Anthropic's "prompt is too long", Bedrock's "Input is too long"; each
    adapter's `too_long` says how it knows): Chorus's estimate under-counted it. Not retried as it was; a step
    compacts harder and tries once more (`chorus.runs.turn_runner`)."""
