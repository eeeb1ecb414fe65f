"""The offline model: deterministic, scriptable per agent, failing on request."""

from __future__ import annotations

import pytest

from chorus.errors import ModelNotAvailable, ModelRateLimited, ModelTimeout
from chorus.llm.base import Finish, ModelMessage, ModelRequest, TextDelta, Usage
from chorus.llm.resolve import resolve_model
from chorus.llm.scripted import ScriptedModel, parse_script
from chorus.tokens import count_request


def request(*assistant_turns: str) -> ModelRequest:
    msgs = (ModelMessage("user", "hi there"),) + tuple(ModelMessage("assistant", t) for t in assistant_turns)
    return ModelRequest(model="default", agent_id="a", agent_name="Ada", system="sys", messages=msgs)


async def collect(model: ScriptedModel, req: ModelRequest) -> list[object]:
    return [e async for e in model.stream(req)]


async def test_default_reply_names_agent_and_turn() -> None:
    events = await collect(ScriptedModel(script=parse_script({"scripted": {"tokens": 3}})), request())
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Ada (turn 1): tok0 tok1"
    # the prompt is counted as compaction measures it (`chorus.tokens`)
    assert events[-2] == Usage(prompt_tokens=count_request(request()), completion_tokens=3)
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
        {"scripted": {"tokens": 15_000_000}},
        {"scripted": {"error_after_tokens": 10**9}},
        {"scripted": {"delay_s": "nan"}},
        {"scripted": {"delay_s": "inf"}},
        {"scripted": {"delay_s": 3600}},
        {"scripted": {"replies": ["x"] * 1001}},
        {"scripted": {"replies": ["x" * 100_001]}},
        {"scripted": {"reasoning": "x" * 100_001}},
        {"scripted": {"reasoning": 5}},
        {"scripted": {"steps": [[]] * 1001}},
        {"scripted": {"calls": [{"name": "t"}] * 1001}},
    ],
)
def test_bad_scripts_are_rejected_at_resolve(metadata: dict[str, object]) -> None:
    with pytest.raises(ModelNotAvailable):
        resolve_model("scripted/default", metadata)


@pytest.mark.parametrize("handle", ["openai", "/x", "x/", "nosuch/claude"])
def test_unknown_or_malformed_handles(handle: str) -> None:
    with pytest.raises(ModelNotAvailable):
        resolve_model(handle)


def test_the_largest_allowed_script_is_accepted() -> None:
    """The bounds reject what is past them, not what is at them."""
    metadata = {"scripted": {"tokens": 100_000, "delay_s": 60, "replies": ["x" * 100_000] * 1000, "steps": [[]] * 1000}}
    assert resolve_model("scripted/default", metadata).handle == "scripted/default"
