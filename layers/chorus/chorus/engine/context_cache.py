"""Agents' contexts kept between steps, so a step renders and measures only what is new to it.

A step's request holds the agent's view of the history (`in_context`: the latest
summary, then the messages after what it covers) rendered from its side
(`render`), and compaction measures it (`chorus.tokens`). A full 32,000-token
window is about a thousand messages, and rendering and measuring them all again
for every step cost more than the rest of the step before the model's first
token. Each step's history differs from the previous step's of the same agent
only at its newest end (the messages since), so this cache keeps, per agent
perspective, the fold of `render` over the history it last saw, with its state
every `MARK_EVERY` messages and the running sum of what the rendered messages
measure, and feeds it only the messages after the longest prefix it has already
seen.

What "seen" means is the same content: the very message dicts (history
messages are not changed once a step has them, and the tail cache shares them
between sends), or equal ones (a message read again from the store); never an
equal id alone, as a retried step writes its messages again under the same ids.
A new summary starts the view again after what it covers (a re-render of what
follows it, once per compaction); a history that differs earlier (a rolled-back
run, a parallel round's snapshot) goes back to the fold's last kept state before
the difference and on from there.
The result is, field for field, what `in_context`, `build_request` and
`count_request` give for the same history (`tests/unit/test_context_cache.py`).

Bounded by the messages held over all entries (`MAX_MESSAGES`), least recently
used first out; one cache per process, shared by the runs it drives. A lookup is
synchronous, so runs on one event loop never see an entry half updated.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from operator import is_
from typing import Any, NamedTuple

from chorus.engine.compaction import SUMMARY, InContext, as_context
from chorus.engine.context import FoldMark, Frame, RenderFold, assemble, buffer, render
from chorus.tokens import count_fixed, count_message
from chorus.vocabulary import ModelMessage, ModelRequest

_NOTHING = object()

MARK_EVERY = 16
"""Messages between two kept states of a fold: going back re-renders at most so many."""

MAX_MESSAGES = 20_000
"""History messages held over all entries: about twenty full 32,000-token windows."""


@dataclass(frozen=True, slots=True)
class Measured:
    """A step's request, what it measures (`count_request` of it), and the view it was built from."""

    request: ModelRequest
    tokens: int
    view: InContext


@dataclass(frozen=True, slots=True)
class Seen:
    """An agent's context of one history: its view, rendered, and what the rendered messages measure."""

    view: InContext
    messages: tuple[ModelMessage, ...]
    tokens: int

    def request(self, frame: Frame) -> Measured:
        """The step's request (as `build_request` makes it from the view), measured."""
        summary = as_context(self.view.summary) if self.view.summary is not None else None
        request = assemble(self.messages, frame, summary)
        head = 1 if summary is not None else 0
        extra = request.messages[:head] + request.messages[head + len(self.messages) :]
        tokens = count_fixed(request) + self.tokens + sum(count_message(m) for m in extra)
        return Measured(request, tokens, self.view)


class _Mark(NamedTuple):
    """An entry's state after a multiple of `MARK_EVERY` history messages."""

    rest: int
    epoch: int
    fold: FoldMark
    tokens: int


class _Entry:
    """The fold of one agent's perspective over the history it was last given."""

    def __init__(self, agent_id: str, hidden_senders: frozenset[str]) -> None:
        self.agent_id = agent_id
        self.hidden_senders = hidden_senders
        self.fed = 0
        """Messages rendered so far (a re-render counts again): the work this cache saves."""
        self._reset()

    def _reset(self) -> None:
        self.raw: list[dict[str, Any]] = []
        """The history messages fed, oldest first: the objects themselves."""
        self.where: list[int] = []
        """Where in `rest` each of `raw` is (-1: a summary)."""
        self.marks: list[_Mark] = []
        """`marks[q]`: the state after `raw[: (q + 1) * MARK_EVERY]`."""
        self.rest: list[dict[str, Any]] = []
        """`raw` without summaries."""
        self.first: dict[str | None, int] = {}
        """Where in `rest` each id first occurs (what `in_context` looks a summary's end up by)."""
        self.summary: dict[str, Any] | None = None
        self.summary_at = -1
        """Where in `raw` `summary` is."""
        self.epoch = -1
        """Where in `raw` the latest summary is (-1: none); the fold started after it."""
        self.start = 0
        """Where in `rest` the view starts."""
        self.sought: object = _NOTHING
        """The id the latest summary ends at while no message has it yet (a summary names an older one)."""
        self.fold = RenderFold(self.agent_id, self.hidden_senders)
        self.sums: list[int] = []
        """`sums[i]`: tokens of `fold.out[: i + 1]`."""
        self.counted: ModelMessage | None = None
        """`fold.out[-1]` when `sums` was last brought up to date."""

    def seen(self) -> Seen:
        view = InContext(self.summary, self.rest[self.start :])
        return Seen(view, tuple(self.fold.out), self.sums[-1] if self.sums else 0)

    def common_prefix(self, history: Sequence[dict[str, Any]]) -> int:
        """How many of `history`'s oldest messages are those fed (the same objects, or equal ones, which
        then take their places: a message read again from the store renders as it did)."""
        raw = self.raw
        same = list(map(is_, raw, history))
        k = same.index(False) if False in same else len(same)
        while k < len(same) and (raw[k] is history[k] or raw[k] == history[k]):
            message = raw[k] = history[k]
            if self.where[k] >= 0:
                self.rest[self.where[k]] = message
            elif k == self.summary_at:
                self.summary = message
            k += 1
        return k

    def feed(self, message: dict[str, Any]) -> None:
        self.raw.append(message)
        if message.get("message_type") == SUMMARY:
            self.where.append(-1)
            self._restart(message, len(self.raw) - 1)
        else:
            rest = self.rest
            self.where.append(len(rest))
            rest.append(message)
            key = message.get("id")
            if key is None or isinstance(key, str):
                self.first.setdefault(key, len(rest) - 1)
            if self.sought is not _NOTHING and key == self.sought and self.first[key] == len(rest) - 1:
                self._start_after(len(rest), len(self.raw) - 1)
            else:
                self._render(message)
        if len(self.raw) % MARK_EVERY == 0:
            self.marks.append(_Mark(len(self.rest), self.epoch, self.fold.mark(), self.sums[-1] if self.sums else 0))

    def back_to(self, length: int) -> None:
        """Take the entry back to its state after `raw[:length]`: to the mark at or before it, then
        forward again over the messages after the mark."""
        marked = length // MARK_EVERY
        kept = self.raw[marked * MARK_EVERY : length]
        if marked == 0 or self.marks[marked - 1].epoch != self.epoch:
            kept = self.raw[:length]
            self._reset()
        else:
            mark = self.marks[marked - 1]
            for message in self.rest[mark.rest :]:
                key = message.get("id")
                if (key is None or isinstance(key, str)) and self.first.get(key, -1) >= mark.rest:
                    del self.first[key]
            del self.raw[marked * MARK_EVERY :], self.where[marked * MARK_EVERY :], self.marks[marked:]
            del self.rest[mark.rest :]
            self.fold.restore(mark.fold)
            del self.sums[mark.fold.length :]
            if self.sums:
                self.sums[-1] = mark.tokens
            self.counted = mark.fold.last
        for message in kept:
            self.feed(message)

    def _restart(self, summary: dict[str, Any], at: int) -> None:
        """The view after a new summary: the messages after the last one it covers (all, if that
        one is not in the history), rendered afresh."""
        self.summary, self.summary_at = summary, at
        last = summary.get("compaction", {}).get("last_message_id")
        sought = last is None or isinstance(last, str)
        found = self.first.get(last) if sought else None
        self.sought = last if sought and found is None else _NOTHING
        self._start_after(found + 1 if found is not None else 0, at)

    def _start_after(self, start: int, at: int) -> None:
        """A new view, from `rest[start]` on: its fold starts afresh at `raw[at]`."""
        self.start, self.epoch = start, at
        self.fold = RenderFold(self.agent_id, self.hidden_senders)
        self.sums, self.counted = [], None
        for message in self.rest[start:]:
            self._render(message)

    def _render(self, message: dict[str, Any]) -> None:
        out, sums = self.fold.out, self.sums
        self.fold.feed(message)
        self.fed += 1
        n = len(sums)
        if n and out[n - 1] is not self.counted:  # the fold replaced its last message (a call joined its answer)
            sums[n - 1] = (sums[n - 2] if n > 1 else 0) + count_message(out[n - 1])
        total = sums[-1] if sums else 0
        for rendered in out[n:]:
            total += count_message(rendered)
            sums.append(total)
        self.counted = out[-1] if out else None


EntryKey = tuple[str, str, frozenset[str], str | None]
"""(tenant, agent, hidden senders, the id of the history's first message)."""


class ContextCache:
    def __init__(self, max_messages: int = MAX_MESSAGES) -> None:
        self.max_messages = max_messages
        self._entries: OrderedDict[EntryKey, _Entry] = OrderedDict()
        self._held = 0
        self.rendered = 0
        """Messages rendered by entries this cache dropped (see `rendered_total`)."""

    def view(
        self,
        tenant_id: str,
        agent_id: str,
        history: Sequence[dict[str, Any]],
        hidden_senders: Collection[str] = (),
        context_limit: int | None = None,
    ) -> Seen:
        """`agent_id`'s context of `history` (oldest first). With `context_limit` (the newest so
        many messages of the view, `buffer`) a view longer than the limit is rendered afresh."""
        hidden = frozenset(hidden_senders)
        first = history[0].get("id") if history else None
        key: EntryKey = (tenant_id, agent_id, hidden, first if isinstance(first, str) else None)
        entry = self._entries.pop(key, None) or _Entry(agent_id, hidden)
        size = len(entry.raw)
        common = entry.common_prefix(history)
        if common < len(entry.raw):
            entry.back_to(common)
        for message in history[common:]:
            entry.feed(message)
        seen = entry.seen()
        self._keep(key, entry, size)
        if context_limit is None or len(seen.view.messages) <= context_limit:
            return seen
        window = buffer(seen.view.messages, context_limit)
        rendered = render(window, agent_id, hidden_senders=hidden_senders)
        self.rendered += len(window)
        return Seen(seen.view, tuple(rendered), sum(count_message(m) for m in rendered))

    def rendered_total(self) -> int:
        """Messages rendered so far: the work a step does in proportion to its history."""
        return self.rendered + sum(e.fed for e in self._entries.values())

    def _keep(self, key: EntryKey, entry: _Entry, size: int) -> None:
        self._held -= size
        if len(entry.raw) > self.max_messages:
            self.rendered += entry.fed
            return
        self._entries[key] = entry
        self._held += len(entry.raw)
        while self._held > self.max_messages:
            _, dropped = self._entries.popitem(last=False)
            self._held -= len(dropped.raw)
            self.rendered += dropped.fed


_shared = ContextCache()


def shared_contexts() -> ContextCache:
    """The contexts this process keeps (every run's turns use it)."""
    return _shared
