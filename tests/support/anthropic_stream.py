"""Anthropic Messages streaming replies, byte for byte as the API sends them, for the fake provider."""

from __future__ import annotations

from typing import Any

from support.provider_fakes import Reply, sse


def event(kind: str, **fields: Any) -> bytes:
    return sse({"type": kind, **fields}, event=kind)


def message_start(input_tokens: int = 25, cache_read: int = 10, cache_write: int = 5) -> bytes:
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-test",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
            "output_tokens": 1,
        },
    }
    return event("message_start", message=message)


def block(index: int, content_block: dict[str, Any], *deltas: dict[str, Any]) -> list[bytes]:
    out = [event("content_block_start", index=index, content_block=content_block)]
    out += [event("content_block_delta", index=index, delta=d) for d in deltas]
    out.append(event("content_block_stop", index=index))
    return out


def message_end(stop_reason: str = "end_turn", output_tokens: int = 15) -> list[bytes]:
    return [
        event(
            "message_delta",
            delta={"stop_reason": stop_reason, "stop_sequence": None},
            usage={"output_tokens": output_tokens},
        ),
        event("message_stop"),
    ]


def text(*pieces: str) -> list[dict[str, Any]]:
    return [{"type": "text_delta", "text": p} for p in pieces]


PING = event("ping")


def text_stream(*pieces: str) -> Reply:
    return Reply(
        chunks=[message_start(), *block(0, {"type": "text", "text": ""}, *text(*pieces)), PING, *message_end()]
    )


def error_body(kind: str, message: str = "nope") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}
