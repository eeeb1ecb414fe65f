"""`FunctionModel`: a model whose answer a Python function computes from the request.

pydantic-ai ships one next to its `TestModel`, and for the same reason: the scripted model
(`chorus.llm.scripted`) is driven by data, through the agent's metadata over HTTP, while a test
or an embedding in-process sometimes needs code: see the request, answer by a rule, or wrap
another model to record, delay or break it.

    FunctionModel(lambda request: f"{request.agent_name} heard {len(request.messages)} messages")

The function returns the reply text (streamed as one text delta and an end of turn), or the
events themselves: an iterable, or an async iterator such as another model's `stream(request)`
or an async generator. Errors it raises reach the engine as a provider's would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from chorus.llm.base import Finish, ModelEvent, ModelRequest, TextDelta

Answer = str | Iterable[ModelEvent] | AsyncIterator[ModelEvent]
"""What the function returns: reply text, or the stream's events."""


class FunctionModel:
    """A `Model` (`chorus.llm.base`) answering with `function(request)`."""

    def __init__(self, function: Callable[[ModelRequest], Answer], handle: str = "function/test") -> None:
        self.function = function
        self._handle = handle

    @property
    def handle(self) -> str:
        return self._handle

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        answer = self.function(request)
        if isinstance(answer, str):
            yield TextDelta(answer)
            yield Finish()
        elif isinstance(answer, AsyncIterator):
            try:
                async for event in answer:
                    yield event
            finally:
                aclose = getattr(answer, "aclose", None)
                if aclose is not None:
                    await aclose()
        else:
            for event in answer:
                await asyncio.sleep(0)  # a stream yields to the loop between events, as a network one does
                yield event
