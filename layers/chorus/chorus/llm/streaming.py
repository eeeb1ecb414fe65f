"""The shape every provider adapter shares: the base owns the logic, the adapter owns the wire.

`ProviderModel.stream()` opens the provider's raw event stream through the
one retry loop, folds raw events into model events with a per-call state,
and translates SDK exceptions at the edge with the adapter's `map_error`
(`raise ... from exc`), so the engine never sees `openai`, `anthropic` or
`botocore` types. An adapter implements `_raw_events`, `_new_state` and
`_map_error`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Hashable
from typing import ClassVar, Generic, Protocol, TypeVar

from chorus.errors import ModelError
from chorus.llm.base import ModelEvent, ModelRequest
from chorus.llm.retry import RetryPolicy, retrying

RawT = TypeVar("RawT")
RawT_contra = TypeVar("RawT_contra", contravariant=True)
ClientT = TypeVar("ClientT")


class StreamState(Protocol[RawT_contra]):
    """Folds one call's raw provider events into model events."""

    def feed(self, raw: RawT_contra) -> list[ModelEvent]:
        """The model events `raw` completes; may raise `InvalidModelResponse`."""

    def finish(self) -> list[ModelEvent]:
        """The closing `Usage`/`Finish` once the raw stream ended; raises `InvalidModelResponse` if it ended early."""


class ProviderModel(Generic[RawT]):
    """A provider's model behind the `llm` port; stateless, so one instance serves concurrent streams."""

    provider: ClassVar[str]

    def __init__(self, name: str, *, retry: RetryPolicy | None = None) -> None:
        self._name = name
        self._retry = retry or RetryPolicy()

    @property
    def handle(self) -> str:
        return f"{self.provider}/{self._name}"

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        return retrying(lambda: self._stream_once(request), self._retry)

    async def _stream_once(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        state = self._new_state()
        raw_events = self._raw_events(request)
        try:
            async for raw in raw_events:
                for event in state.feed(raw):
                    yield event
        except ModelError:
            raise
        except Exception as exc:
            mapped = self._map_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            await raw_events.aclose()
        for event in state.finish():
            yield event

    def _raw_events(self, request: ModelRequest) -> AsyncGenerator[RawT, None]:
        """The provider's raw stream for `request`, closed when the caller stops."""
        raise NotImplementedError

    def _new_state(self) -> StreamState[RawT]:
        raise NotImplementedError

    def _map_error(self, exc: Exception) -> ModelError | None:
        """The `ModelError` for an SDK or transport exception, None for anything else (re-raised as is)."""
        raise NotImplementedError


class ClientCache(Generic[ClientT]):
    """Async SDK clients built once per configuration *and event loop*.

    An async client's connection pool belongs to the loop that opened its
    connections; a process that runs one loop (uvicorn, Mangum) builds one
    client per configuration, and one that starts a loop per invocation
    (`asyncio.run` in a Lambda handler, pytest) gets a fresh client with
    each loop instead of a pool bound to a closed one. A client's pool
    references its loop, so the weak key alone would never let a closed loop
    go: each lookup drops the clients of loops that have closed, or a warm
    Lambda environment would keep every invocation's loop, client and
    connection (~0.9 MB an invocation, `benchmarks/memory.py`).
    """

    def __init__(self, build: Callable[..., ClientT]) -> None:
        self._build = build
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Hashable, ...], ClientT]]
        self._by_loop = weakref.WeakKeyDictionary()
        self._no_loop: dict[tuple[Hashable, ...], ClientT] = {}

    def get(self, *config: Hashable) -> ClientT:
        """The client for `config` on the running loop (or outside any loop), built on first use."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            clients = self._no_loop
        else:
            for closed in [other for other in self._by_loop if other.is_closed()]:
                del self._by_loop[closed]
            clients = self._by_loop.setdefault(loop, {})
        if config not in clients:
            clients[config] = self._build(*config)
        return clients[config]

    def __len__(self) -> int:
        return len(self._no_loop) + sum(len(c) for c in self._by_loop.values())

    def clear(self) -> None:
        self._by_loop = weakref.WeakKeyDictionary()
        self._no_loop = {}
