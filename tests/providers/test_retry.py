"""The one retry loop and the shared mapping helpers, without a network."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncGenerator

import pytest

from chorus.errors import InvalidModelResponse, ModelError, ModelRateLimited, ModelTimeout
from chorus.llm.base import Finish, ModelEvent, TextDelta
from chorus.llm.messages import error_for_type, retry_after_s, tool_input
from chorus.llm.retry import RetryPolicy, retrying
from support.provider_fakes import Pauses


class Flaky:
    """Opens streams that fail with `errors[i]` on attempt i (before or after `after` events), then succeed."""

    def __init__(self, *errors: ModelError, after: int = 0) -> None:
        self.errors = list(errors)
        self.after = after
        self.opened = 0
        self.closed = 0

    async def open(self) -> AsyncGenerator[ModelEvent, None]:
        self.opened += 1
        try:
            error = self.errors.pop(0) if self.errors else None
            for i in range(3):
                if error is not None and i == self.after:
                    raise error
                yield TextDelta(f"t{i}")
            yield Finish()
        finally:
            self.closed += 1


async def drain(flaky: Flaky, policy: RetryPolicy) -> list[ModelEvent]:
    return [e async for e in retrying(flaky.open, policy)]


async def test_transient_errors_before_the_first_event_are_retried_with_backoff(pauses: Pauses) -> None:
    flaky = Flaky(ModelTimeout("slow"), ModelError("503", retryable=True))
    policy = RetryPolicy(attempts=3, base_delay_s=1.0, max_delay_s=8.0, sleep=pauses)

    events = await drain(flaky, policy)

    assert events == [TextDelta("t0"), TextDelta("t1"), TextDelta("t2"), Finish()]
    assert flaky.opened == flaky.closed == 3
    assert 0.5 <= pauses.taken[0] <= 1.0 and 1.0 <= pauses.taken[1] <= 2.0, "jittered, doubling"


async def test_retry_after_is_honoured_but_capped(pauses: Pauses) -> None:
    flaky = Flaky(ModelRateLimited("429", retry_after_s=3), ModelRateLimited("429", retry_after_s=600))

    await drain(flaky, RetryPolicy(attempts=3, max_delay_s=8.0, sleep=pauses))

    assert pauses.taken == [3.0, 8.0]


async def test_permanent_errors_are_not_retried(pauses: Pauses) -> None:
    flaky = Flaky(InvalidModelResponse("garbage"))

    with pytest.raises(InvalidModelResponse):
        await drain(flaky, RetryPolicy(sleep=pauses))

    assert flaky.opened == 1 and pauses.taken == []


async def test_attempts_are_bounded(pauses: Pauses) -> None:
    flaky = Flaky(*[ModelRateLimited(f"429 #{i}") for i in range(5)])

    with pytest.raises(ModelRateLimited, match="#2"):
        await drain(flaky, RetryPolicy(attempts=3, sleep=pauses))

    assert flaky.opened == 3 and len(pauses.taken) == 2


async def test_an_error_after_the_first_event_propagates_unretried(pauses: Pauses) -> None:
    flaky = Flaky(ModelRateLimited("429 mid-stream"), after=1)
    seen: list[ModelEvent] = []

    with pytest.raises(ModelRateLimited):
        async for event in retrying(flaky.open, RetryPolicy(sleep=pauses)):
            seen.append(event)

    assert seen == [TextDelta("t0")]
    assert flaky.opened == 1 and pauses.taken == []


async def test_a_consumer_stopping_early_closes_the_attempt(pauses: Pauses) -> None:
    flaky = Flaky()
    stream = retrying(flaky.open, RetryPolicy(sleep=pauses))

    assert await anext(stream) == TextDelta("t0")
    await stream.aclose()  # type: ignore[attr-defined]

    assert flaky.closed == 1


def test_retry_after_headers() -> None:
    assert retry_after_s({"retry-after": "12"}) == 12.0
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_s({}) is None
    assert retry_after_s({"retry-after": "soon"}) is None
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert 3000 < (retry_after_s({"retry-after": later}) or 0) <= 3600


def test_tool_input_is_always_an_object() -> None:
    assert tool_input('{"city": "Paris"}') == {"city": "Paris"}
    assert tool_input("") == {}
    assert tool_input("[1, 2]") == {"_value": [1, 2]}
    assert tool_input("{oops") == {"_raw_arguments": "{oops"}


@pytest.mark.parametrize(
    ("kind", "error", "retryable"),
    [
        ("rate_limit_error", ModelRateLimited, True),
        ("rate_limit_exceeded", ModelRateLimited, True),
        ("overloaded_error", ModelError, True),
        ("timeout_error", ModelTimeout, True),
        ("invalid_request_error", ModelError, False),
        (None, ModelError, True),
    ],
)
def test_in_stream_error_types(kind: str | None, error: type[ModelError], retryable: bool) -> None:
    mapped = error_for_type(kind, "detail")
    assert type(mapped) is error and mapped.retryable is retryable
