"""Fault injection: crash a worker at a random point of a run, recover it with another, check invariants.

The crash is real in the sense that matters: from the chosen store write or
model token on, the dead worker writes nothing at all (its store raises a
`Crash` that no `except Exception` catches, like a killed process), and its
lease is left to expire. A second worker on the same SQLite file then runs
its recovery sweep. Every case asserts, against an uninterrupted reference
run of the same configuration:

- the run reaches a terminal status (completed);
- its event log is `seq_id` 1..N with no gap, ending in `[DONE]`;
- history holds exactly the reference's messages (input, turns, the
  supervisor's broadcast, replies and tool return, the dynamic manager's
  choices), no duplicates;
- the stream, reassembled by message id while dropping the messages an
  `abandoned` marker names, says exactly what the reference said;
- two readers racing the recovering writer read the identical log.

Cases mix round robin, supervisor (parallel fan-out), dynamic and sleeptime
groups (`config_for(seed)`). The seeded campaign over them, which also mixes
run modes, clients that hang up, resume and cancel, and flaky models, is
`test_campaign.py`; the crash machinery is `tests/support/crashes.py`, and
this module has the cases pinned to one crash point.
"""

from __future__ import annotations

import json
from pathlib import Path

from support import replies
from support.crashes import Config, crash_and_recover


async def test_a_crash_mid_message_is_marked_abandoned_and_redone(tmp_path: Path) -> None:
    """Step 1 streamed all of its tokens and made them durable, then the worker died before committing it."""
    cfg = Config(
        agents=1, tokens=[6], max_turns=1, stream_tokens=True, crash_on_token=False, crash_fraction=0.0,
        crash_at_call=("commit_step", 2),
    )  # fmt: skip
    log = await crash_and_recover(tmp_path, -1, cfg)
    events = [json.loads(d) for _, d in log[:-1]]
    markers = [e for e in events if e["message_type"] == "ping"]
    assert len(markers) == 1
    (abandoned_id,) = markers[0]["abandoned"]["message_ids"]
    before = [e for e in events[: events.index(markers[0])] if e["message_type"] == "assistant_message"]
    after = [e for e in events[events.index(markers[0]) :] if e["message_type"] == "assistant_message"]
    assert before and {e["id"] for e in before} == {abandoned_id}
    assert len(after) == 6 and {e["id"] for e in after} != {abandoned_id}, "the redone message has a new id"


async def test_a_crash_mid_fan_out_finishes_only_the_unfinished_workers(tmp_path: Path) -> None:
    """Supervisor fan-out to 3 workers: the worker dies committing the second worker's reply.

    Commits so far: the input, the manager's broadcast, the first worker's reply. The recovering
    worker must keep that reply (same message, not re-run), re-run the other two workers, hand all
    three replies to the manager, and end with the reference's history."""
    cfg = Config(
        agents=3, tokens=[3, 4, 5], max_turns=1, stream_tokens=True, crash_on_token=False, crash_fraction=0.0,
        crash_at_call=("commit_step", 4), manager_type="supervisor",
    )  # fmt: skip
    log = await crash_and_recover(tmp_path, -2, cfg)
    events = [json.loads(d) for _, d in log[:-1]]
    (marker,) = [e for e in events if e["message_type"] == "ping"]
    ids: dict[str, set[str]] = {}
    for e in events:
        if e["message_type"] == "assistant_message":
            ids.setdefault(e["name"], set()).add(e["id"])
    assert len(ids["Agent0"]) == 1, "the committed reply was not run again"
    assert len(ids["Agent1"]) == 2 and set(marker["abandoned"]["message_ids"]) < ids["Agent1"]
    assert len(ids["Agent2"]) == 1 and len(ids["Manager"]) == 1
    (ret,) = [e for e in events if e["message_type"] == "tool_return_message"]
    assert [r["name"] for r in replies(ret["tool_return"])] == ["Agent0", "Agent1", "Agent2"]
