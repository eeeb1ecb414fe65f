"""`FunctionModel`: the reply a function computes, streamed as the engine expects, in process and through the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from chorus.llm.base import Finish, ModelEvent, ModelRequest, TextDelta, ToolCallDelta, Usage
from chorus.llm.function_model import FunctionModel
from chorus.llm.scripted import ScriptedModel
from support import create_agent, create_group, payloads, stream

REQUEST = ModelRequest(model="test", agent_id="agent-1", agent_name="Ada", system="s", messages=())


async def events(model: FunctionModel) -> list[ModelEvent]:
    return [event async for event in model.stream(REQUEST)]


async def test_text_is_one_delta_and_an_end_of_turn() -> None:
    model = FunctionModel(lambda request: f"{request.agent_name} here")
    assert await events(model) == [TextDelta("Ada here"), Finish()]
    assert model.handle == "function/test"


async def test_events_are_streamed_as_returned() -> None:
    answer: list[ModelEvent] = [
        ToolCallDelta(0, id="call-1", name="roll", arguments="{}"),
        Usage(3, 1),
        Finish("tool_use"),
    ]
    assert await events(FunctionModel(lambda _: answer)) == answer


async def test_an_async_iterator_wraps_another_model() -> None:
    seen: list[ModelRequest] = []
    inner = ScriptedModel()

    def record(request: ModelRequest) -> AsyncIterator[ModelEvent]:
        seen.append(request)
        return inner.stream(request)

    wrapped = await events(FunctionModel(record, handle=inner.handle))
    assert seen == [REQUEST] and wrapped == [e async for e in inner.stream(REQUEST)]


async def test_an_error_the_function_raises_reaches_the_caller() -> None:
    def broken(_: ModelRequest) -> str:
        raise RuntimeError("no answer")

    with pytest.raises(RuntimeError, match="no answer"):
        await events(FunctionModel(broken))


async def test_a_group_run_on_function_models(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(resolver=lambda agent: FunctionModel(lambda request: f"{request.agent_name} says hi"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            agents = [await create_agent(client, name) for name in ("Ada", "Bob")]
            group = await create_group(client, [a["id"] for a in agents])
            said = payloads(await stream(client, group["id"], {"input": "hello"}))
    spoken = [e["content"] for e in said if e["message_type"] == "assistant_message"]
    assert spoken[:2] == ["Ada says hi", "Bob says hi"]
