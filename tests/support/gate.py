"""A model that holds turns until a test lets them go, and counts the turns running at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from chorus.llm.base import Finish, Model, ModelEvent, ModelRequest, TextDelta
from chorus.llm.function_model import FunctionModel
from chorus.store.records import AgentRecord


class Gate:
    """Holds turns whose last input says "hold" until `release`; records what each turn saw."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.running = 0
        self.most_at_once = 0
        self.seen: list[list[str]] = []
        self.holding = asyncio.Event()

    def release(self) -> None:
        self.opened.set()

    def __call__(self, agent: AgentRecord) -> Model:
        async def answer(request: ModelRequest) -> AsyncIterator[ModelEvent]:
            texts = [m.content for m in request.messages]
            self.seen.append(texts)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            try:
                last = texts[-1] if texts else ""
                if "hold" in last:
                    self.holding.set()
                    await self.opened.wait()
                yield TextDelta(f"re: {last.split(':')[-1].strip()}")
                yield Finish()
            finally:
                self.running -= 1

        return FunctionModel(answer)
