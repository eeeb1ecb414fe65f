"""Bedrock ConverseStream replies in the AWS event-stream framing, and a boto3 client of the fake provider."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.config

from support.provider_fakes import FakeServer, Reply, bedrock_event

MODEL_ID = "anthropic.claude-test-v1:0"
EVENTSTREAM = "application/vnd.amazon.eventstream"


def client_for(fake: FakeServer, read_timeout: float = 5) -> Any:
    config = botocore.config.Config(read_timeout=read_timeout, retries={"total_max_attempts": 1, "mode": "standard"})
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def start() -> bytes:
    return bedrock_event("messageStart", {"role": "assistant"})


def text_block(index: int, *pieces: str) -> list[bytes]:
    deltas = [bedrock_event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": p}}) for p in pieces]
    return [*deltas, bedrock_event("contentBlockStop", {"contentBlockIndex": index})]


def stop(reason: str = "end_turn") -> list[bytes]:
    usage = {
        "inputTokens": 30,
        "outputTokens": 12,
        "totalTokens": 42,
        "cacheReadInputTokens": 8,
        "cacheWriteInputTokens": 2,
    }
    return [
        bedrock_event("messageStop", {"stopReason": reason}),
        bedrock_event("metadata", {"usage": usage, "metrics": {"latencyMs": 120}}),
    ]


def stream(*chunks: bytes) -> Reply:
    return Reply(chunks=list(chunks), content_type=EVENTSTREAM)


def text_stream(*pieces: str) -> Reply:
    return stream(start(), *text_block(0, *pieces), *stop())
