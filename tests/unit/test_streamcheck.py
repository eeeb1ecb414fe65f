"""The stream-vs-log checker of the load test, the benchmarks and the fault campaign must be able to fail."""

from __future__ import annotations

from support.streamcheck import Received, StreamCheck, check, parse_frames

LOG = [(1, '{"a":1}'), (2, '{"a":2}'), (3, '{"a":3}'), (4, "[DONE]")]


def body(*seqs: int, done: bool = True) -> bytes:
    frames = [f'id: {s}\ndata: {{"a":{s}}}\n\n' for s in seqs]
    return ("".join(frames) + ('data: {"message_type":"ping"}\n\n') + ("data: [DONE]\n\n" if done else "")).encode()


def test_a_faithful_stream_passes() -> None:
    result = check(parse_frames(body(1, 2, 3)), LOG)
    assert result.ok and result.events == 3 and result.runs == 1


def test_a_missing_and_a_duplicated_event_are_counted() -> None:
    result = check(parse_frames(body(1, 1, 3)), LOG)
    assert not result.ok
    assert (result.lost, result.duplicated, result.reordered) == (1, 1, 0)


def test_reordered_changed_and_invented_events_are_counted() -> None:
    received = Received([(2, '{"a":2}'), (1, '{"a":1}'), (3, '{"a":"x"}'), (9, "{}")], done=True)
    result = check(received, LOG)
    assert (result.reordered, result.changed, result.lost) == (1, 2, 0)


def test_a_client_that_gave_up_needs_a_gapless_prefix() -> None:
    assert check(parse_frames(body(1, 2, done=False)), LOG).ok
    gap = check(parse_frames(body(1, 3, done=False)), LOG)
    assert gap.lost == 1
    cut = check(parse_frames(body(1, 2, done=False)), LOG, complete=True)
    assert cut.lost == 2, "event 3 and the end were never received"


def test_a_log_with_a_gap_or_no_end_fails() -> None:
    assert check(parse_frames(body(1, 3)), [(1, '{"a":1}'), (3, '{"a":3}'), (4, "[DONE]")]).log_gaps
    assert check(parse_frames(body(1, done=False)), [(1, '{"a":1}')], complete=False).log_gaps


def test_counts_add_up() -> None:
    total = StreamCheck()
    total.add(check(parse_frames(body(1, 1, 3)), LOG))
    total.add(check(parse_frames(body(1, 2, 3)), LOG))
    assert total.as_dict() == {
        "runs": 2, "events_checked": 6, "lost": 1, "duplicated": 1, "reordered": 0, "changed": 0, "log_gaps": 0,
    }  # fmt: skip
