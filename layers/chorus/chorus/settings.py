"""One settings object, read once at start-up.

Every knob has a default that works on a laptop, so `make run` needs no
configuration; AWS deployments set the same names through the SAM template.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration taken from `CHORUS_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CHORUS_", extra="ignore")

    store: Literal["sqlite", "dynamodb"] = "sqlite"
    """Which `store` adapter holds agents, groups, messages and run logs."""
    db_path: Path = Path("./.chorus/chorus.db")
    """SQLite file of the embedded default."""
    table_name: str = "chorus"
    """DynamoDB table of the AWS deployment."""
    executor: Literal["inprocess", "stepfunctions"] = "inprocess"
    """Who executes background runs: this process, or the run state machine (AWS)."""
    state_machine_arn: str | None = None
    """The run state machine, for `executor=stepfunctions`."""
    workflow_history_budget: int = Field(default=20_000, ge=100, le=25_000)
    """History events one execution may use before a run continues in a new execution."""
    workflow_inline_s: float = Field(default=0.0, ge=0, le=3600)
    """How long a Plan task keeps running a run's sequential turns itself before it hands the next
    one to the Map (0: every turn is a Step of the Map); see docs/workflow.md, "Inline turns"."""
    workflow_start: Literal["execution", "invoke"] = "execution"
    """How the API starts a background run with `executor=stepfunctions`: an execution of the state
    machine, or an async invocation of the Plan function that runs the run alone and hands it to an
    execution only when it needs one; see docs/workflow.md, "Direct start"."""
    plan_function: str | None = None
    """Name or ARN of the Plan function, for `workflow_start=invoke`."""
    default_model: str | None = None
    """Model handle (`provider/model`) used when an agent names none."""
    default_context_window: int = Field(default=32_000, ge=512, le=10_000_000)
    """Context window (tokens) of an agent whose model Chorus does not know, unless it sets `context_window_limit`."""
    models: str = ""
    """Comma-separated model handles `GET /v1/models/` lists besides the providers' catalogs (an Ollama model)."""
    event_retention_s: int = Field(default=10_800, ge=60)
    """How long a finished run's event log stays resumable."""
    ping_interval_s: float = Field(default=30.0, gt=0)
    """Seconds between keep-alive pings on a stream that asked for them."""
    fanout_concurrency: int = Field(default=50, ge=1)
    """Workers of one supervisor broadcast running at once."""
    tool_timeout_s: float = Field(default=30.0, gt=0)
    """How long a custom tool may run in the sandbox before it is killed."""
    tool_executor: Literal["auto", "sandbox", "lambda", "subprocess"] = "auto"
    """Where custom tools run: `sandbox` (bubblewrap namespaces), `lambda`, `subprocess` (a plain child process,
    single tenant only), or `auto`: `sandbox` when bubblewrap works here, else `subprocess` for a single tenant
    (with a warning), else none (multi-tenant custom tools are refused with 503)."""
    tool_memory_mb: int = Field(default=512, ge=64)
    """Address space of each process of a sandboxed tool call, in MiB."""
    tool_cpu_s: int = Field(default=30, ge=1)
    """CPU seconds each process of a sandboxed tool call may use before the kernel kills it."""
    tool_max_processes: int = Field(default=32, ge=2)
    """Processes (and threads) one sandboxed tool call may have at once, its interpreter included."""
    tool_max_file_mb: int = Field(default=16, ge=1)
    """Largest file a sandboxed tool may write, in MiB."""
    tool_max_open_files: int = Field(default=256, ge=16)
    """File descriptors each process of a sandboxed tool call may hold."""
    tool_tmp_mb: int = Field(default=64, ge=1)
    """Size of the sandboxed tool's private tmpfs (`/tmp`, its working directory and HOME), in MiB of memory."""
    tool_network: bool = False
    """Let sandboxed tools use the host's network (off: they have only a loopback of their own)."""
    tool_runner_function: str | None = None
    """Name or ARN of the ToolRunner Lambda function that runs custom tools with the `lambda` executor (AWS)."""
    mcp_private_networks: Literal["auto", "allow", "deny"] = "auto"
    """Whether MCP servers may be on loopback or private addresses: `allow`, `deny`, or `auto` (allowed with a
    single tenant, refused when several share the server). Link-local addresses (cloud metadata) never are."""
    mcp_allowed_hosts: str = ""
    """Comma-separated MCP server host names the operator trusts: allowed whatever they resolve to (but link-local)."""
    max_run_attempts: int = Field(default=3, ge=1, le=100)
    """How many workers may die while running the same step of a run before recovery ends the run
    `failed` instead of driving it again (a step that kills its worker would otherwise kill every
    worker that adopts it)."""
    lease_ttl_s: float = Field(default=30.0, ge=2, le=3600)
    """How long a run's lease outlives its worker's last heartbeat (renewed every second): how
    soon another worker adopts the run of a worker that died."""
    max_active_runs_per_tenant: int = Field(default=16, ge=1, le=100_000)
    """Runs of one tenant's groups that may be active (`created` or `running`) at once; a send
    beyond it is answered 429 with `Retry-After`."""
    log_flush_events: int = Field(default=64, ge=1)
    """Token chunks coalesced into one durable log record at most."""
    log_flush_interval_s: float = Field(default=0.05, gt=0)
    """Longest time a background run's event waits in memory before its log record is written (a
    foreground run's log, which no reader waits on, is written every `log_flush_events` and at each step)."""
    api_keys: SecretStr | None = None
    """`key=tenant,key2=tenant2` pairs; unset means one anonymous local tenant (a secret: never in a repr or log)."""
    api_keys_parameter: str | None = None
    """Name of an SSM (SecureString) parameter holding the `api_keys` pairs; read (cached) instead of `api_keys`."""
    allowed_hosts: str = "127.0.0.1,localhost,[::1]"
    """Comma-separated `Host` names (any port) a server with no API keys answers; `*` answers any.

    Without keys anyone who can make a browser send a request is a user, so a web page could
    reach a local server through DNS rebinding; with keys configured, or on Lambda, this is not checked."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body in bytes; a longer one is refused with 413 before it is read."""
    otel: Literal["auto", "on", "off"] = "auto"
    """OpenTelemetry traces of runs, exported over OTLP/HTTP (the `otel` extra): `auto` traces when
    `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, `on` always (the SDK's
    default endpoint, `http://localhost:4318`), `off` never; `OTEL_SDK_DISABLED=true` turns it off too."""
    host: str = "127.0.0.1"
    port: int = 8283


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, parsed on first use."""
    return Settings()
