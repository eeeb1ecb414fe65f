"""The exception tree of Chorus, each class carrying its HTTP status.

    ChorusError (500)
    ├── BadRequest (400)
    │   └── ModelNotAvailable (400)      a handle whose provider is not installed or configured
    ├── Unauthorized (401)
    ├── NotFound (404)
    ├── Conflict (409)
    │   └── AlreadyCommitted (409)       a step's messages were written before (retry)
    ├── RunExpired (410)
    ├── TooManyActiveRuns (429)       the tenant's active-run limit; carries `Retry-After`
    ├── StorageUnavailable (503)     the store failed or throttled past its own retries; retryable
    ├── ToolExecutionUnavailable (503)  no executor here isolates one tenant's tools from another's
    └── ModelError (502)                 the model failed; carries a stop reason
        ├── ModelRateLimited (429)       retryable; may carry the provider's retry-after
        ├── ModelTimeout (504)           retryable
        ├── ModelAuthError (401)         the provider refused the configured credentials
        └── InvalidModelResponse (502)   malformed output; stop reason `invalid_llm_response`

Adapters translate their backend's errors into these at the edge, so the
engine and the API never see `sqlite3` or `botocore` types. One handler on
`ChorusError` renders `{"detail": ...}` (plus any `extra` fields).
"""

from __future__ import annotations

from typing import Any


class ChorusError(Exception):
    """Base of every error Chorus raises on purpose."""

    status_code = 500

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the error's response carries (none but what a subclass adds)."""
        return {}


class BadRequest(ChorusError):
    status_code = 400


class ModelNotAvailable(BadRequest):
    """A model handle names a provider that is not installed or not configured."""


class Unauthorized(ChorusError):
    status_code = 401


class NotFound(ChorusError):
    status_code = 404


class Conflict(ChorusError):
    status_code = 409


class AlreadyCommitted(Conflict):
    """A step's output is already in the store: the caller is a retry and must not write again."""


class RunExpired(ChorusError):
    status_code = 410


class TooManyActiveRuns(ChorusError):
    """The tenant has as many active runs as it may (`Settings.max_active_runs_per_tenant`)."""

    status_code = 429

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class StorageUnavailable(ChorusError):
    """The store could not complete a call (throttled past its backoff, unreachable): worth retrying later."""

    status_code = 503


class ToolExecutionUnavailable(ChorusError):
    """Custom tools cannot run safely here (several tenants, no isolating executor); the detail says what is missing."""

    status_code = 503


class ModelError(ChorusError):
    """The model call failed. `stop_reason` is what the run ends with."""

    status_code = 502
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
    status_code = 429
    retryable = True


class ModelTimeout(ModelError):
    status_code = 504
    retryable = True


class ModelAuthError(ModelError):
    """The provider rejected the configured credentials (401/403): a configuration fault, never retried."""

    status_code = 401


class InvalidModelResponse(ModelError):
    stop_reason = "invalid_llm_response"
