"""Deterministic ids for what a step writes.

A message's id is derived from (run, step, index), so a retried step (crash,
Lambda retry, Step Functions retry) produces the very same ids: a duplicate
write is a key collision the store refuses, never a second message
(invariant 2). Ids keep Letta's `<prefix>-<uuid4>` shape so clients'
validators accept them.
"""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("0b6f6c1e-3c5e-4f0a-9a57-6c686f727573")


def _uuid4_shaped(*parts: str) -> uuid.UUID:
    digest = uuid.uuid5(_NAMESPACE, "\x1f".join(parts))
    return uuid.UUID(bytes=digest.bytes, version=4)


INPUT_STEP = "00000"
"""The key of the step holding a run's input messages."""


def step_key(round_index: int, call: int = 0, step: int = 1) -> str:
    """Sortable key of one model step: the `step`-th step (1-based) of call `call` in round `round_index`.

    Parallel calls of a round get their keys from their place in the plan, not from when
    they finish, so a retried or recovered round writes under the very same keys."""
    return f"{round_index:05d}.{call:04d}.{step:03d}"


def tool_call_id(run_id: str, key: str, index: int) -> str:
    """An id for a tool call whose model gave none (providers differ; some omit it)."""
    return f"call_{_uuid4_shaped(run_id, key, 'tool', str(index)).hex[:24]}"


def child_run_id(run_id: str, agent_id: str) -> str:
    """The id of the background run `run_id` starts for `agent_id` (sleeptime): a retry finds it."""
    return f"run-{_uuid4_shaped(run_id, 'child', agent_id)}"


def step_id(run_id: str, key: str) -> str:
    return f"step-{_uuid4_shaped(run_id, key)}"


def message_id(run_id: str, key: str, index: int, incarnation: int = 1) -> str:
    """The id of a step's `index`-th message. A run re-driven after a crash (incarnation > 1)
    names its messages afresh, so clients never splice an abandoned attempt's chunks into them."""
    if incarnation == 1:
        return f"message-{_uuid4_shaped(run_id, key, str(index))}"
    return f"message-{_uuid4_shaped(run_id, key, str(index), str(incarnation))}"


def otid(message_id: str) -> str:
    """Letta's offline threading id: the message uuid with its last byte replaced."""
    return message_id.removeprefix("message-")[:-2] + "80"
