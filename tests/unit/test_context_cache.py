"""Contexts kept between steps: what they give is what a fresh render gives, and they render only what is new.

The reference is the uncached path, `in_context`, then `build_request` and
`count_request`, over the same history. Histories change between lookups as
they do between steps: messages added at the end, the newest ones read again
from the store (new dicts, the same ids), a rolled-back run's removed, a
parallel round's left out of a snapshot, and summaries added.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chorus.engine import context_cache
from chorus.engine.compaction import SUMMARY, as_context, in_context
from chorus.engine.context import Frame, build_request
from chorus.engine.context_cache import MARK_EVERY, ContextCache
from chorus.tokens import count_message, count_request
from chorus.vocabulary import ModelMessage, ToolSpec

AGENTS = ("a", "b", "c")
TOOLS = (ToolSpec("lookup", "Look it up.", {"type": "object", "properties": {"q": {"type": "string"}}}),)


def check(
    cache: ContextCache,
    history: Sequence[dict[str, Any]],
    agent: str,
    hidden: tuple[str, ...] = (),
    limit: int | None = None,
    instruction: str | None = None,
    reminder: str | None = None,
) -> None:
    """The cached request, its measure and its view equal the uncached path's, field for field."""
    fields: dict[str, Any] = {"model": "m", "agent_id": agent, "agent_name": agent.upper(), "system": "You are."}
    extra: dict[str, Any] = {"tools": TOOLS, "instruction": instruction, "reminder": reminder}
    measured = cache.view("t", agent, history, hidden, limit).request(Frame(**fields, **extra))
    view = in_context(history)
    summary = as_context(view.summary) if view.summary is not None else None
    fresh = build_request(
        **fields, **extra, history=view.messages, hidden_senders=hidden, context_limit=limit, summary=summary
    )
    assert measured.request == fresh
    assert measured.tokens == count_request(fresh)
    assert measured.view.summary is view.summary
    assert len(measured.view.messages) == len(view.messages)
    assert all(a is b for a, b in zip(measured.view.messages, view.messages, strict=True))


def said(i: int, sender: str | None, kind: str = "assistant_message", **fields: Any) -> dict[str, Any]:
    name = sender.upper() if sender is not None else None
    text = f"message {i}: a few words of an earlier exchange"
    return {"id": f"m{i}", "message_type": kind, "sender_id": sender, "name": name, "content": text} | fields


@st.composite
def message(draw: st.DrawFn, i: int) -> dict[str, Any]:
    """One history message of any kind the renderer treats apart."""
    agent = draw(st.sampled_from(AGENTS))
    step = {"step_id": f"s{draw(st.integers(0, 2))}"}
    call_id = draw(st.sampled_from(["c1", "c2", "c3"]))
    tool = draw(st.sampled_from(["lookup", "send_message_to_all_agents_in_group", "send_message"]))
    call = {"name": tool, "arguments": '{"message": "hi"}', "tool_call_id": call_id}
    options = [
        said(i, None, "user_message"),
        said(i, None, "user_message", name="Zoe"),
        said(i, None, "system_message"),
        said(i, agent, **step),
        said(i, agent, "reasoning_message", reasoning="hm", signature=draw(st.sampled_from([None, "sig"])), **step),
        said(i, agent, "tool_call_message", tool_call=call, tool_calls=[call], **step),
        said(i, agent, "approval_request_message", tool_call=call, tool_calls=[call], **step),
        said(i, agent, "tool_return_message", tool_call_id=call_id, tool_return="ok", **step),
        {
            "id": f"m{i}",
            "message_type": SUMMARY,
            "summary": f"up to {i}",
            "compaction": {"last_message_id": f"m{draw(st.integers(0, i + 2))}", "messages": i},
        },
    ]
    chosen: dict[str, Any] = draw(st.sampled_from(options))
    return chosen


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_cached_context_is_what_a_fresh_render_gives(data: st.DataObject) -> None:
    cache = ContextCache()
    history: list[dict[str, Any]] = []
    made = 0
    for _ in range(data.draw(st.integers(1, 12), label="steps")):
        change = data.draw(st.sampled_from(["add", "add", "add", "reread", "rollback", "snapshot"]))
        if change == "add" or not history:
            count = data.draw(st.integers(1, 20))
            history = history + [data.draw(message(made + k)) for k in range(count)]
            made += count
        elif change == "reread":  # the newest messages decoded again: equal, not the same objects
            k = data.draw(st.integers(1, len(history)))
            history = history[:-k] + [dict(m) for m in history[-k:]]
        elif change == "rollback":
            history = history[: -data.draw(st.integers(1, len(history)))]
        else:
            history = [m for i, m in enumerate(history) if i != data.draw(st.integers(0, len(history) - 1))]
        agent = data.draw(st.sampled_from(AGENTS))
        hidden = data.draw(st.sampled_from([(), ("b",)]))
        limit = data.draw(st.sampled_from([None, None, 3]))
        check(cache, history, agent, hidden, limit, data.draw(st.sampled_from([None, "Answer."])), "Call it.")


def conversation(count: int, start: int = 0) -> list[dict[str, Any]]:
    """A round robin's history: the human, then each agent's answer."""
    return [
        said(i, None, "user_message") if i % 4 == 0 else said(i, AGENTS[i % 4 - 1], step_id=f"s{i}")
        for i in range(start, start + count)
    ]


def test_a_step_renders_only_the_messages_it_has_not_seen() -> None:
    cache = ContextCache()
    history = conversation(1_000)
    check(cache, history, "a")
    assert cache.rendered_total() == 1_000
    for n in range(5):
        history = history + conversation(4, 1_000 + 4 * n)
        before = cache.rendered_total()
        check(cache, history, "a")
        assert cache.rendered_total() - before == 4, "the four new messages, not the thousand before them"
    before = cache.rendered_total()
    history = history[:-4] + [dict(m) for m in history[-4:]] + conversation(4, 2_000)
    check(cache, history, "a")
    assert cache.rendered_total() - before == 4, "messages read again from the store are known by their content"
    before = cache.rendered_total()
    retried = {**history[-1], "content": "said otherwise the second time"}
    check(cache, [*history[:-1], retried], "a")
    rendered = cache.rendered_total() - before
    assert 1 <= rendered <= MARK_EVERY, "a message written again under its id is rendered again (from a mark)"


def test_a_summary_renders_the_view_after_it_once() -> None:
    cache = ContextCache()
    history = conversation(1_000)
    check(cache, history, "b")
    covers = {"last_message_id": "m899", "messages": 900}
    history = [*history, {"id": "sum", "message_type": SUMMARY, "summary": "so far", "compaction": covers}]
    before = cache.rendered_total()
    check(cache, history, "b")
    assert cache.rendered_total() - before == 100, "the hundred messages after what it covers"
    history = history + conversation(4, 1_000)
    before = cache.rendered_total()
    check(cache, history, "b")
    assert cache.rendered_total() - before == 4


def test_a_history_changed_earlier_goes_back_to_where_it_still_agrees() -> None:
    cache = ContextCache()
    history = conversation(1_000)
    check(cache, history, "c")
    snapshot = history[:990] + history[995:]  # a parallel round's messages left out
    before = cache.rendered_total()
    check(cache, snapshot, "c")
    assert 5 <= cache.rendered_total() - before <= 5 + MARK_EVERY, "from the mark before the first difference"

    call = {"name": "lookup", "arguments": "{}", "tool_call_id": "c1"}
    answer = said(1_000, "c", step_id="s")
    called = said(1_001, "c", "tool_call_message", tool_call=call, tool_calls=[call], step_id="s")
    check(cache, [*history, answer, called], "c")  # the call joins the answer of its step
    before = cache.rendered_total()
    check(cache, [*history, answer], "c")  # and the answer is alone again
    assert cache.rendered_total() - before <= MARK_EVERY


def test_each_message_is_measured_once(monkeypatch: pytest.MonkeyPatch) -> None:
    measured: list[ModelMessage] = []

    def counting(message: ModelMessage) -> int:
        measured.append(message)
        return count_message(message)

    monkeypatch.setattr(context_cache, "count_message", counting)
    cache = ContextCache()
    history = conversation(1_000)
    check(cache, history, "a", instruction="Answer.")
    assert len(measured) == 1_000 + 1, "each rendered message, and the instruction"
    measured.clear()
    check(cache, [*history, *conversation(4, 1_000)], "a", instruction="Answer.")
    assert len(measured) == 4 + 1


def test_what_is_held_is_bounded() -> None:
    cache = ContextCache(max_messages=2_500)
    for start in range(0, 5_000, 1_000):  # five groups' histories
        check(cache, conversation(1_000, start), "a")
    assert sum(len(e.raw) for e in cache._entries.values()) <= 2_500
    check(cache, conversation(3_000), "a")
    assert all(len(e.raw) <= 2_500 for e in cache._entries.values()), "a history above the bound is not kept"
