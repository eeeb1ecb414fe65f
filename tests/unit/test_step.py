"""The agent step fold: model events in, stream events and committed messages out."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from chorus.engine import identity
from chorus.engine.step import AgentStep, StepContext
from chorus.llm.base import Finish, ModelEvent, ReasoningDelta, TextDelta, Usage
from chorus.schemas.messages import StreamEvent

VALID: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)


def ctx(stream_tokens: bool) -> StepContext:
    return StepContext(
        "run-1", identity.step_key(1, 0, 1), "agent-a", "Ada", "2026-11-24T06:33:05+00:00", stream_tokens
    )


def feed_all(step: AgentStep) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    events: list[ModelEvent] = [
        ReasoningDelta("think"),
        ReasoningDelta(" more"),
        TextDelta("hi"),
        TextDelta(" there"),
        Usage(10, 2),
        Finish("end_turn"),
    ]
    for event in events:
        out += step.feed(event)
    rest, outcome = step.finish()
    return [*out, *rest, {"outcome": outcome}]


def test_token_streaming_emits_chunks_sharing_ids() -> None:
    *emitted, last = feed_all(AgentStep(ctx(stream_tokens=True)))
    outcome = last["outcome"]
    assert [e["message_type"] for e in emitted] == ["reasoning_message"] * 2 + ["assistant_message"] * 2
    assert emitted[0]["id"] == emitted[1]["id"] != emitted[2]["id"] == emitted[3]["id"]
    assert [e.get("content") or e.get("reasoning") for e in emitted] == ["think", " more", "hi", " there"]
    assert [m["message_type"] for m in outcome.messages] == ["reasoning_message", "assistant_message"]
    assert outcome.messages[1]["content"] == "hi there"
    assert outcome.messages[0]["reasoning"] == "think more"
    assert outcome.usage == Usage(10, 2)
    assert outcome.chunks == 4
    for event in emitted + outcome.messages:
        VALID.validate_python(event)
        assert event["name"] == "Ada" and event["sender_id"] == "agent-a"


def test_step_streaming_emits_whole_messages_once() -> None:
    *emitted, last = feed_all(AgentStep(ctx(stream_tokens=False)))
    assert emitted == last["outcome"].messages
    assert [e["message_type"] for e in emitted] == ["reasoning_message", "assistant_message"]


def test_ids_are_deterministic_per_run_step_and_index() -> None:
    first = feed_all(AgentStep(ctx(True)))[-1]["outcome"].messages
    again = feed_all(AgentStep(ctx(True)))[-1]["outcome"].messages
    assert [m["id"] for m in first] == [m["id"] for m in again]
    assert first[0]["id"] == identity.message_id("run-1", "00001.0000.001", 0)
    assert identity.message_id("run-1", "00001.0000.001", 0) != identity.message_id("run-1", "00002.0000.001", 0)
    assert identity.message_id("run-1", "00001.0000.001", 0) != identity.message_id("run-2", "00001.0000.001", 0)


def test_ids_have_letta_shape() -> None:
    import re

    from chorus.ids import pattern

    assert re.fullmatch(pattern("message"), identity.message_id("run-1", "00001.0000.001", 3))
    assert re.fullmatch(pattern("step"), identity.step_id("run-1", "00001.0000.001"))
    assert identity.otid(identity.message_id("r", "k", 0)).endswith("80")


def test_empty_model_answer_commits_nothing() -> None:
    step = AgentStep(ctx(True))
    assert step.feed(Finish("end_turn")) == []
    rest, outcome = step.finish()
    assert rest == [] and outcome.messages == [] and outcome.finish_reason == "end_turn"


def test_a_signature_arriving_after_the_thinking_signs_the_whole_message() -> None:
    for stream_tokens in (True, False):
        step = AgentStep(ctx(stream_tokens))
        out = [
            *step.feed(ReasoningDelta("deep")),
            *step.feed(ReasoningDelta("", signature="sig")),
            *step.feed(TextDelta("hi")),
        ]
        _, outcome = step.finish()
        reasoning = outcome.messages[0]
        assert reasoning["reasoning"] == "deep" and reasoning["signature"] == "sig"
        if stream_tokens:
            assert out[-2]["signature"] == "sig", "the chunk carrying it tells token-streaming clients"
