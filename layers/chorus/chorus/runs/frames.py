"""SSE framing of log events: the one encoder of the stream format.

`id:` carries `seq_id` (a standard `Last-Event-ID` reconnect resumes after
it), errors are sent as `event: error`, the end as `data: [DONE]` without
an id, and pings (from the connection, never logged) without an id either.
"""

from __future__ import annotations

DONE = b"[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"
PING_FRAME = b'data: {"message_type":"ping"}\n\n'
_ERROR_PREFIX = b'{"message_type":"error_message"'


def frame(seq: int, data: bytes) -> bytes:
    if data == DONE:
        return DONE_FRAME
    head = b"event: error\nid: " if data.startswith(_ERROR_PREFIX) else b"id: "
    return head + str(seq).encode() + b"\ndata: " + data + b"\n\n"


def unnumbered_error_frame(data: bytes) -> bytes:
    """An error event that takes no `seq_id`: one the log never holds (a stream ended by the reader's side)."""
    return b"event: error\ndata: " + data + b"\n\n"


def is_done(frame_bytes: bytes) -> bool:
    return frame_bytes == DONE_FRAME
