"""Bounded retries with backoff for model streams, shared by every provider adapter.

A transient failure (`ModelError.retryable`: rate limits, timeouts, 5xx,
dropped connections) is retried only *before the stream's first event*:
once a token was yielded the caller has emitted it, and a second attempt
would stream it again, so from then on the error propagates and the run
ends with its stop reason. The SDKs' own retry loops are switched off by the
adapters, so this is the only one and its bound is the whole bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from chorus.errors import ModelError
from chorus.llm.base import ModelEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a stream is opened again."""

    attempts: int = 3
    """Attempts in all, the first included; 1 disables retries."""
    base_delay_s: float = 0.5
    """Backoff before the second attempt; doubled for each later one."""
    max_delay_s: float = 8.0
    """Cap on any one pause, a provider's `retry-after` included."""
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)
    """Injected by tests to record pauses instead of taking them."""

    def delay_s(self, attempt: int, error: ModelError) -> float:
        """The pause after failed attempt number `attempt` (1-based): the provider's hint, else jittered backoff."""
        if error.retry_after_s is not None:
            return min(max(error.retry_after_s, 0.0), self.max_delay_s)
        backoff = min(self.base_delay_s * 2.0 ** (attempt - 1), self.max_delay_s)
        return backoff * random.uniform(0.5, 1.0)


NO_RETRY = RetryPolicy(attempts=1)


async def retrying(
    open_stream: Callable[[], AsyncGenerator[ModelEvent, None]], policy: RetryPolicy
) -> AsyncIterator[ModelEvent]:
    """Yield the events of `open_stream()`, opening it again on transient errors raised before its first event."""
    attempt = 1
    while True:
        stream = open_stream()
        async with contextlib.aclosing(stream):
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                return
            except ModelError as exc:
                if not exc.retryable or attempt >= policy.attempts:
                    raise
                delay = policy.delay_s(attempt, exc)
                logger.warning(
                    "model call failed (%s: %s); attempt %d of %d in %.2fs",
                    type(exc).__name__,
                    exc.detail,
                    attempt + 1,
                    policy.attempts,
                    delay,
                )
            else:
                yield first
                async for event in stream:
                    yield event
                return
        await policy.sleep(delay)
        attempt += 1
