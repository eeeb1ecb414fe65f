"""Peak memory of the API function's process through foreground runs: what `ApiMemorySize` must hold.

Method: DynamoDB is a moto server in this process; the API runs as on
Lambda under the Web Adapter (`functions/api/run.sh`: `uvicorn chorus.api:app`)
in a child interpreter (`chorus.devserver.running_server`) with the DynamoDB store against it (boto3 and all),
`AWS_LAMBDA_FUNCTION_NAME` set so Powertools loads as on Lambda. The child's
resident set is read from `/proc/<pid>/status` (`VmRSS`, and `VmHWM`, its
peak) once it answers, then after each of `--runs` foreground token-streamed
runs of a 3-agent round robin (`--tokens` tokens a reply, `openai/gpt-4o-mini`
on `openai_fake.py`, so the OpenAI SDK and its client are in the process as
deployed), all on one group,
so the history grows as it does for a group that keeps talking. One request
at a time, as a Lambda environment serves them. The Web Adapter's own
process (a small Rust binary) and the Lambda runtime's are not in the figure.

Then, against the same moto server, the workflow functions' processes
through as many background runs (`memory_workflow.py`; `--api-only` skips it).

Prints JSON: the peak after start and after the runs, the configured memory
(`ApiMemorySize`'s default in `template.yaml`) and the ratio of the two; under
`workflow`, the same per workflow function against its `MemorySize`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import boto3
import httpx

from floor import uvicorn_app
from lambda_env import Template, status_mb
from memory_workflow import MODEL

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
TABLE = "chorus-memory-bench"


def measure(runs: int, tokens: int, workflow: bool) -> dict[str, Any]:
    from moto.server import ThreadedMotoServer

    sys.path.insert(0, str(ROOT / "layers" / "chorus"))
    from chorus.devserver import free_port, running_server
    from chorus.store.dynamodb_table import create_table

    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    os.environ.update(credentials)
    moto_port = free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    server.start()
    try:
        create_table(boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION), TABLE)
        env = {
            **credentials,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_LAMBDA_FUNCTION_NAME": "chorus-memory-bench",
            "CHORUS_STORE": "dynamodb",
            "CHORUS_TABLE_NAME": TABLE,
            "PYTHONPATH": str(ROOT / "layers" / "chorus"),
        }
        with (
            uvicorn_app("openai_fake", {"OPENAI_FAKE_TOKENS": str(tokens)}) as fake,
            running_server(
                {**env, "OPENAI_BASE_URL": f"{fake}/v1", "OPENAI_API_KEY": "memory-bench"}, quiet=True
            ) as api,
            httpx.Client(base_url=api.url, timeout=120) as client,
        ):
            started = status_mb(api.pid)
            body = {"system": "s", "model": MODEL}
            agents = [client.post("/v1/agents", json={"name": f"A{i}", **body}).json()["id"] for i in range(3)]
            group = client.post("/v1/groups", json={"agent_ids": agents, "description": "memory"}).json()["id"]
            after: list[float] = []
            for _ in range(runs):
                send = {"input": "go", "stream_tokens": True}
                with client.stream("POST", f"/v1/groups/{group}/messages/stream", json=send) as response:
                    assert response.status_code == 200, response.read()
                    text = b"".join(response.iter_bytes())
                assert text.endswith(b"data: [DONE]\n\n"), text[-200:]
                after.append(status_mb(api.pid)["VmHWM"])
            peak = status_mb(api.pid)["VmHWM"]
        configured = Template().memory_mb("ApiFunction")
        result = {
            "benchmark": "memory",
            "runs": runs,
            "tokens_per_reply": tokens,
            "model": f"{MODEL} on openai_fake.py",
            "api_started_mb": round(started["VmHWM"], 1),
            "api_peak_mb_after_first_run": round(after[0], 1),
            "api_peak_mb": round(peak, 1),
            "api_memory_size_mb": configured,
            "peak_over_configured": round(peak / configured, 3),
            "python": sys.version.split()[0],
        }
        if workflow:
            from memory_workflow import measure as measure_workflow

            result["workflow"] = measure_workflow(endpoint, TABLE, runs, tokens)
        return result
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--api-only", action="store_true", help="skip the workflow functions (memory_workflow.py)")
    args = parser.parse_args()
    print(json.dumps(measure(args.runs, args.tokens, not args.api_only), indent=2))


if __name__ == "__main__":
    main()
