"""Idempotency keys: a request sent again with the same key gets the run the first one started.

The key is remembered with a fingerprint of the request, so the same key on a different
request is refused rather than silently answered with an unrelated run.
"""

from __future__ import annotations

import hashlib
import time

import orjson

from chorus.errors import IdempotencyKeyReused
from chorus.schemas.requests import MessageRequest
from chorus.store.base import Store
from chorus.store.records import IdempotencyRecord, RunRecord


def fingerprint(group_id: str, request: MessageRequest) -> str:
    left_out = {"streaming"} if request.multitask_strategy != "reject" else {"streaming", "multitask_strategy"}
    body = request.model_dump(mode="json", exclude=left_out)  # keys of sends before the strategy still match
    return hashlib.sha256(orjson.dumps([group_id, body], option=orjson.OPT_SORT_KEYS)).hexdigest()


async def remember_key(
    store: Store, run: RunRecord, key: str, fingerprint: str, retention_s: float
) -> RunRecord | None:
    """Remember `key` for the new `run`; if an earlier request holds it, drop `run` and return the
    earlier run (or refuse a different request sent with the same key)."""
    record = IdempotencyRecord(
        tenant_id=run.tenant_id,
        key=key,
        fingerprint=fingerprint,
        run_id=run.id,
        expires_at=time.time() + retention_s,
    )
    stored = await store.remember_idempotency_key(record)
    if stored.run_id == run.id:
        return None
    await store.delete_run(run.tenant_id, run.id)
    if stored.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request; use a new key for a new request."
        )
    return await store.get_run(run.tenant_id, stored.run_id)
