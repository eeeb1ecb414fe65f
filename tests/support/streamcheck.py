"""What a client received, checked against the run's stored event log: lost, duplicated, changed events.

One checker for the load benchmark, the load test and the fault campaign.
The log is the truth: `seq_id` 1..N ending in `[DONE]`. A client's view is
every `id:`-carrying SSE frame it was sent, in arrival order, across all of
its connections (the first stream and each resume), plus whether it saw
`[DONE]`. A client that read to `[DONE]` must have seen every event exactly
once, in order, byte for byte; one that gave up (a foreground stream cut
short) must have seen a gapless prefix.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field

DONE = "[DONE]"


@dataclass(frozen=True, slots=True)
class Received:
    """One client's view of one run."""

    events: list[tuple[int, str]] = field(default_factory=list)
    """(`id:`, `data:`) of every frame with an id, as received, all connections concatenated."""
    done: bool = False
    """Whether a `data: [DONE]` frame arrived."""


@dataclass(slots=True)
class StreamCheck:
    """Counts for one or many runs; `ok` when nothing was lost, duplicated, reordered or changed."""

    runs: int = 0
    events: int = 0
    """Log events the client's view was compared with."""
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    changed: int = 0
    """Events received with another body than the log's under the same `seq_id`."""
    log_gaps: int = 0
    """Numbers missing from the stored log itself, or a log not ending in `[DONE]`."""

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.reordered or self.changed or self.log_gaps)

    def add(self, other: StreamCheck) -> None:
        for name in ("runs", "events", "lost", "duplicated", "reordered", "changed", "log_gaps"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {
            "runs": self.runs,
            "events_checked": self.events,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "changed": self.changed,
            "log_gaps": self.log_gaps,
        }


def parse_frames(body: bytes | str) -> Received:
    """A whole SSE body as a `Received` (pings and other frames without an id are skipped)."""
    text = body.decode() if isinstance(body, bytes) else body
    events: list[tuple[int, str]] = []
    done = False
    for block in text.split("\n\n"):
        seq: int | None = None
        data: list[str] = []
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                seq = int(value)
            elif name == "data":
                data.append(value)
        payload = "\n".join(data)
        if payload == DONE:
            done = True
        elif seq is not None:
            events.append((seq, payload))
    return Received(events, done)


def check(received: Received, log: list[tuple[int, str]], *, complete: bool | None = None) -> StreamCheck:
    """Compare one client's view of a run with the run's stored log.

    `complete` says whether the client must have seen the whole log (default:
    whether it saw `[DONE]`); otherwise it must have seen a gapless prefix.
    """
    result = StreamCheck(runs=1)
    expected_seqs = list(range(1, len(log) + 1))
    if [seq for seq, _ in log] != expected_seqs or not log or log[-1][1] != DONE:
        result.log_gaps = len(set(expected_seqs) ^ {seq for seq, _ in log}) or 1
    truth = {seq: data for seq, data in log if data != DONE}
    result.events = len(truth)
    complete = received.done if complete is None else complete
    seqs = [seq for seq, _ in received.events]
    seen = set(seqs)
    result.duplicated = len(seqs) - len(seen)
    result.reordered = sum(1 for a, b in itertools.pairwise(seqs) if b < a)
    result.changed = sum(1 for seq, data in received.events if seq in truth and truth[seq] != data)
    result.changed += sum(1 for seq in seen if seq not in truth)  # an event the log never had
    wanted = set(truth) if complete else set(range(1, max(seen, default=0) + 1))
    result.lost = len(wanted - seen)
    if complete and not received.done:
        result.lost += 1  # the end of the stream itself
    return result


def check_unresumable(received: Received, log: list[tuple[int, str]], kept_ids: set[str]) -> StreamCheck:
    """`check` for a client of a run no one can resume (`background=false`) whose worker died.

    Such a run's frames are sent as they are emitted, before they are stored
    (`RunLog.resumable`), so the client saw a prefix of the stored log, then
    perhaps frames its worker never stored, which the adopting worker
    numbered again. A step commits only after its frames are stored, so those
    belong to an attempt that never committed: none may carry the id of a
    message the run's history keeps (that would be content the client saw
    under an id whose stored content differs). The numbering the client saw
    is gapless from 1 all the same, on its one connection.
    """
    truth = {seq: data for seq, data in log if data != DONE}
    stored = list(itertools.takewhile(lambda event: truth.get(event[0]) == event[1], received.events))
    result = check(Received(stored, False), log, complete=False)
    unstored = received.events[len(stored) :]
    result.changed += sum(1 for _, data in unstored if _message_id(data) in kept_ids)
    seqs = [seq for seq, _ in received.events]
    result.reordered += sum(1 for a, b in itertools.pairwise(seqs) if b != a + 1)
    return result


def _message_id(data: str) -> str | None:
    event = json.loads(data)
    value = event.get("id") if isinstance(event, dict) else None
    return value if isinstance(value, str) else None
