"""What crosses the wire between `LambdaToolExecutor` and the ToolRunner function.

One request and one response model, validated on both sides: the server does
not trust what comes back (the function runs hostile code) and the function
does not trust what comes in (anyone its invoke permission reaches may call
it). Both are bounded by Lambda's synchronous payload limit of 6 MB each way,
with room to spare, so a too-large call is refused with a message instead of
failing in the Lambda service.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from chorus.tools.execution import ToolCall, ToolResult

__all__ = [
    "MAX_TIMEOUT_S",
    "REQUEST_BYTE_LIMIT",
    "RESPONSE_BYTE_LIMIT",
    "ToolRunRequest",
    "ToolRunResponse",
    "lambda_tenant_id",
]

REQUEST_BYTE_LIMIT = 6_000_000
"""Largest request the executor sends and the function accepts (Lambda refuses more than 6 MiB)."""
RESPONSE_BYTE_LIMIT = 5_500_000
"""Largest response the function returns, JSON with every non-ASCII character escaped (an upper bound)."""
MAX_TIMEOUT_S = 900.0
"""Lambda's longest function timeout: no tool call can be given more."""
SOURCE_CHAR_LIMIT = 200_000
"""As for `POST /v1/tools`."""

_TENANT_ID = re.compile(r"[a-zA-Z0-9._:/=+\-@ ]{1,256}")
"""What Lambda accepts as `TenantId` (the `Invoke` API's pattern and length)."""
_HASHED = "sha256:"

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class ToolRunRequest(BaseModel):
    """One tool call as the ToolRunner function receives it: the call without its tenant, and no server env."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    source: str = Field(min_length=1, max_length=SOURCE_CHAR_LIMIT)
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
    arguments: dict[str, Any]
    timeout_s: float = Field(gt=0, le=MAX_TIMEOUT_S)
    return_char_limit: int = Field(ge=0, le=1_000_000)
    env: dict[EnvName, Annotated[str, StringConstraints(max_length=32_768)]] = Field(
        default_factory=dict, max_length=64
    )
    """Variables given to this tool explicitly (as `ToolCall.env`)."""

    @classmethod
    def of(cls, call: ToolCall) -> ToolRunRequest:
        return cls.model_validate(
            {
                "source": call.source_code,
                "name": call.name,
                "arguments": dict(call.arguments),
                "timeout_s": float(call.timeout_s),
                "return_char_limit": call.return_char_limit,
                "env": dict(call.env),
            },
            strict=False,
        )

    def payload(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False).encode()


class ToolRunResponse(BaseModel):
    """The function's answer: a `ToolResult` as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    status: Literal["success", "error"]
    value: str
    stdout: list[str]
    stderr: list[str]
    duration_s: float = Field(ge=0)

    @classmethod
    def of(cls, result: ToolResult) -> ToolRunResponse:
        return cls(
            status=result.status,
            value=result.value,
            stdout=list(result.stdout),
            stderr=list(result.stderr),
            duration_s=result.duration_s,
        )

    def result(self) -> ToolResult:
        return ToolResult(self.value, self.status, list(self.stdout), list(self.stderr), self.duration_s)


def lambda_tenant_id(tenant_id: str) -> str:
    """The `TenantId` Lambda isolates on: the tenant itself when Lambda accepts it, else its SHA-256.

    Distinct tenants always get distinct ids: a hashed id carries a prefix no
    tenant passed through as is can have (those starting with it are hashed too).
    """
    if _TENANT_ID.fullmatch(tenant_id) and not tenant_id.startswith(_HASHED):
        return tenant_id
    return _HASHED + hashlib.sha256(tenant_id.encode("utf-8", "surrogatepass")).hexdigest()
