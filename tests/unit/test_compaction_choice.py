"""The pure part of compaction: what an agent's context holds, and where history is cut."""

from __future__ import annotations

from typing import Any

from chorus.engine.compaction import SUMMARY, choose_cut, in_context, message_tokens, summary_fields, transcript
from chorus.tokens import answer_reserve, count_request, count_text, model_window
from chorus.vocabulary import ModelMessage, ModelRequest, ToolSpec


def said(i: int, text: str = "some words said here", step: str | None = None) -> dict[str, Any]:
    return {
        "id": f"m{i}",
        "message_type": "assistant_message",
        "content": text,
        "name": "Ada",
        "sender_id": "a1",
        "step_id": step or f"s{i}",
    }


def call(i: int, call_id: str, step: str) -> dict[str, Any]:
    tool_call = {"name": "lookup", "arguments": "{}", "tool_call_id": call_id}
    return {"id": f"m{i}", "message_type": "tool_call_message", "tool_call": tool_call, "step_id": step, "name": "Ada"}


def returned(i: int, call_id: str) -> dict[str, Any]:
    return {
        "id": f"m{i}",
        "message_type": "tool_return_message",
        "tool_call_id": call_id,
        "tool_return": "ok",
        "name": "Ada",
    }


def summary(covers: str, n: int) -> dict[str, Any]:
    return {
        "id": "sum",
        "message_type": SUMMARY,
        "summary": "earlier",
        "compaction": {"last_message_id": covers, "messages": n},
    }


def test_the_estimate_over_counts_english_and_counts_cjk_per_character() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert count_text(text) >= len(text) / 4  # byte-pair tokenizers give about one token per 4 characters
    assert count_text("漢字" * 10) == 20
    assert count_text("") == 0


def test_a_request_counts_its_system_messages_and_tools() -> None:
    bare = ModelRequest(model="m", agent_id="a", agent_name="A", system="", messages=())
    full = ModelRequest(
        model="m",
        agent_id="a",
        agent_name="A",
        system="x" * 300,
        messages=(ModelMessage("user", "y" * 300),),
        tools=(ToolSpec("t", "d", {"type": "object"}),),
    )
    assert count_request(full) > count_request(bare) + 200


def test_known_models_have_their_window_and_others_the_fallback() -> None:
    assert model_window("openai/gpt-4o-mini") == 128_000
    assert model_window("anthropic/claude-sonnet-4-5") == 200_000
    assert model_window("bedrock/us.anthropic.claude-3-5-haiku") == 200_000
    assert model_window("scripted/default", 5_000) == 5_000
    assert answer_reserve(128_000) == 8_192 and answer_reserve(1_000) == 250


def test_in_context_starts_after_what_the_latest_summary_covers() -> None:
    history = [said(i) for i in range(6)]
    history.insert(5, summary("m2", 3))
    view = in_context(history)
    assert view.summary is not None and view.summary["id"] == "sum"
    assert [m["id"] for m in view.messages] == ["m3", "m4", "m5"]
    assert in_context(history[:3]).summary is None


def test_the_cut_keeps_the_newest_and_summarises_the_oldest() -> None:
    history = [said(i) for i in range(10)]
    per = message_tokens(history[0])
    assert choose_cut(history, 3 * per) == 7
    assert choose_cut(history, 0) == 9, "the newest message always stays"
    assert choose_cut(history, 100 * per) == 0, "all of it fits: nothing to summarise"


def test_the_cut_never_splits_a_step() -> None:
    history = [said(0), said(1), said(2, step="s"), said(3, step="s"), said(4)]
    per = message_tokens(history[0])
    assert choose_cut(history, 2 * per) == 2


def test_a_call_whose_return_is_kept_or_missing_is_never_summarised() -> None:
    history = [said(0), said(1), call(2, "c1", "s2"), said(3), returned(4, "c1"), said(5)]
    per = message_tokens(history[5])
    assert choose_cut(history, 2 * per) == 2, "the call and everything after it stay with its return"
    unanswered = [said(0), said(1), call(2, "c1", "s2"), said(3), said(4)]
    assert choose_cut(unanswered, 1) == 2
    answered = [said(0), call(1, "c1", "s1"), returned(2, "c1"), said(3), said(4)]
    assert choose_cut(answered, message_tokens(said(4))) == 4
    reused = [call(0, "c1", "s0"), returned(1, "c1"), said(2), call(3, "c1", "s3"), said(4), returned(5, "c1")]
    assert choose_cut(reused, message_tokens(said(4))) == 3, "an id used again does not answer the new call"


def test_a_new_summary_extends_the_previous_one() -> None:
    previous = summary("m2", 3) | {"compaction": {"first_message_id": "m0", "last_message_id": "m2", "messages": 3}}
    fields = summary_fields("new", previous, [said(3), said(4)], 999)
    assert fields["compaction"] == {
        "first_message_id": "m0",
        "last_message_id": "m4",
        "messages": 5,
        "tokens_before": 999,
    }
    text = transcript(previous, [said(3), call(4, "c", "s"), returned(5, "c")])
    assert text.splitlines() == [
        "Previous summary: earlier",
        "Ada: some words said here",
        "Ada called lookup({})",
        "Ada's tool returned: ok",
    ]
