"""Builders of the events a run emits, as plain dicts in Letta's field order.

The streaming hot path builds one dict per token chunk, so these avoid
pydantic; `chorus.schemas.messages` documents the same shapes and the tests
validate every event against it. Dates are second-precision `+00:00`, ids
are deterministic (see `chorus.engine.identity`), `seq_id` is filled by the
run log when the event is appended.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

from chorus.engine import identity
from chorus.schemas.requests import MessageCreate, MessageType

Event = dict[str, Any]

MESSAGE_TYPES: frozenset[str] = frozenset(get_args(MessageType))
"""The `LettaMessage` types (what `include_return_message_types` may name)."""


def wire_date(moment: datetime | None = None) -> str:
    """Letta's message date format: `2026-11-24T06:33:05+00:00`."""
    return (moment or datetime.now(UTC)).replace(microsecond=0).isoformat()


def message(
    message_type: str,
    *,
    id: str,
    date: str,
    otid: str,
    run_id: str,
    step_id: str | None,
    name: str | None = None,
    sender_id: str | None = None,
    **fields: Any,
) -> Event:
    """A `LettaMessage` dict; `fields` are the type's own (`content`, `reasoning`, …)."""
    event: Event = {
        "id": id,
        "date": date,
        "name": name,
        "message_type": message_type,
        "otid": otid,
        "sender_id": sender_id,
        "step_id": step_id,
        "is_err": None,
        "seq_id": None,
        "run_id": run_id,
    }
    event.update(fields)
    return event


_ROLE_TYPES = {"user": "user_message", "system": "system_message", "assistant": "assistant_message"}


def input_messages(run_id: str, key: str, inputs: list[MessageCreate]) -> list[Event]:
    """A run's input messages as history keeps them, under the input step's ids."""
    date = wire_date()
    step = identity.step_id(run_id, key)
    out = []
    for index, msg in enumerate(inputs):
        mid = identity.message_id(run_id, key, index)
        content: Any = msg.content if isinstance(msg.content, str) else [p.model_dump(mode="json") for p in msg.content]
        out.append(
            message(
                _ROLE_TYPES[msg.role],
                id=mid,
                date=date,
                otid=msg.otid or identity.otid(mid),
                run_id=run_id,
                step_id=step,
                name=msg.name,
                sender_id=msg.sender_id,
                content=content,
            )
        )
    return out


def stop_reason(reason: str) -> Event:
    return {"message_type": "stop_reason", "stop_reason": reason}


def usage_statistics(
    *,
    prompt_tokens: int,
    completion_tokens: int,
    step_count: int,
    run_ids: list[str] | None,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> Event:
    return {
        "message_type": "usage_statistics",
        "completion_tokens": completion_tokens,
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "step_count": step_count,
        "run_ids": run_ids,
        "cached_input_tokens": cached_input_tokens,
        "cache_write_tokens": cache_write_tokens,
        "reasoning_tokens": reasoning_tokens,
    }


def error_message(*, run_id: str, error_type: str, message: str, detail: str | None) -> Event:
    """The payload of `event: error`. Starts with `message_type` so log readers can spot it by prefix."""
    return {
        "message_type": "error_message",
        "run_id": run_id,
        "error_type": error_type,
        "message": message,
        "detail": detail,
    }


def abandoned_attempt(*, run_id: str, step_id: str | None, message_ids: list[str], reason: str) -> Event:
    """Marks output of an attempt that will never complete (its worker crashed or was retried).

    Sent as a `ping` so every Letta client tolerates it (they ignore pings); Chorus-aware clients
    drop the listed messages. Unlike keep-alive pings it is logged, with a `seq_id`.
    """
    return {
        "message_type": "ping",
        "run_id": run_id,
        "abandoned": {"step_id": step_id, "message_ids": message_ids, "reason": reason},
    }
