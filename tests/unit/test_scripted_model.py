"""The offline model: deterministic, scriptable per agent, failing on request."""

from __future__ import annotations

import pytest

from chorus.errors import ModelNotAvailable, ModelRateLimited, ModelTimeout
from chorus.llm.base import Finish, ModelMessage, ModelRequest, TextDelta, Usage
from chorus.llm.resolve import resolve_model
from chorus.llm.scripted import ScriptedModel, parse_script


def request(*assistant_turns: str) -> ModelRequest:
    msgs = (ModelMessage("user", "hi there"),) + tuple(ModelMessage("assistant", t) for t in assistant_turns)
    return ModelRequest(model="default", agent_id="a", agent_name="Ada", system="sys", messages=msgs)


async def collect(model: ScriptedModel, req: ModelRequest) -> list[object]:
    return [e async for e in model.stream(req)]


async def test_default_reply_names_agent_and_turn() -> None:
    events = await collect(ScriptedModel(script=parse_script({"scripted": {"tokens": 3}})), request())
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Ada (turn 1): tok0 tok1"
    assert events[-2] == Usage(prompt_tokens=3, completion_tokens=3)
    assert events[-1] == Finish("end_turn")
    second = await collect(ScriptedModel(), request("earlier"))
    assert "".join(e.text for e in second if isinstance(e, TextDelta)).startswith("Ada (turn 2):")


async def test_replies_cycle_by_turn() -> None:
    model = ScriptedModel(script=parse_script({"scripted": {"replies": ["one two", "three"]}}))
    assert [e.text for e in await collect(model, request()) if isinstance(e, TextDelta)] == ["one", " two"]
    assert [e.text for e in await collect(model, request("x")) if isinstance(e, TextDelta)] == ["three"]
    assert model.last_request is not None


@pytest.mark.parametrize(("kind", "exc"), [("rate_limit", ModelRateLimited), ("timeout", ModelTimeout)])
async def test_scripted_errors_after_n_tokens(kind: str, exc: type[Exception]) -> None:
    model = ScriptedModel(script=parse_script({"scripted": {"error": kind, "error_after_tokens": 2}}))
    seen = []
    with pytest.raises(exc):
        async for event in model.stream(request()):
            seen.append(event)
    assert len(seen) == 2


@pytest.mark.parametrize(
    "metadata",
    [
        {"scripted": "x"},
        {"scripted": {"tokens": 0}},
        {"scripted": {"delay_s": -1}},
        {"scripted": {"error": "nope"}},
        {"scripted": {"tokens": "many"}},
    ],
)
def test_bad_scripts_are_rejected_at_resolve(metadata: dict[str, object]) -> None:
    with pytest.raises(ModelNotAvailable):
        resolve_model("scripted/default", metadata)


@pytest.mark.parametrize("handle", ["openai", "/x", "x/", "nosuch/claude"])
def test_unknown_or_malformed_handles(handle: str) -> None:
    with pytest.raises(ModelNotAvailable):
        resolve_model(handle)
