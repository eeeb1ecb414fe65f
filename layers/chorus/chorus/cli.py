"""`chorus serve` and `chorus demo`.

`demo` talks to a Chorus server over HTTP like any client would: the one at
`--url` if given, else one it starts itself on a free loopback port. It
creates three agents and a round-robin group (on the scripted model unless
`CHORUS_DEFAULT_MODEL` names a real one) and prints the conversation live,
token by token, with each speaker's name.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx
import uvicorn

from chorus.devserver import running_server
from chorus.settings import get_settings

PERSONAS = [
    ("Ada", "You are Ada, a pragmatic engineer. Keep answers short."),
    ("Brook", "You are Brook, a curious product designer. Ask one good question."),
    ("Cyd", "You are Cyd, a careful reviewer. Point out one risk."),
]


def serve(host: str, port: int, reload: bool) -> None:
    uvicorn.run("chorus.api:app", host=host, port=port, reload=reload, log_level="info")


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    if response.status_code >= 400:
        raise SystemExit(f"POST {path} failed with {response.status_code}: {response.text}")
    data: dict[str, Any] = response.json()
    return data


def demo(url: str, message: str, out: Any = sys.stdout) -> int:
    settings = get_settings()
    model = settings.default_model or "scripted/demo"
    with httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=300)) as client:
        agent_ids = []
        for name, system in PERSONAS:
            body: dict[str, Any] = {"name": name, "system": system, "model": model}
            if model.startswith("scripted/"):
                body["metadata"] = {"scripted": {"tokens": 12, "delay_s": 0.02}}
            agent_ids.append(_post(client, "/v1/agents/", body)["id"])
        group = _post(client, "/v1/groups/", {"agent_ids": agent_ids, "description": "Chorus demo"})
        print(f"group {group['id']} (round robin, model {model})\n> {message}", file=out)
        body = {"input": message, "stream_tokens": True}
        speaking: str | None = None
        with client.stream("POST", f"/v1/groups/{group['id']}/messages/stream", json=body) as response:
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                kind = event.get("message_type")
                if kind == "assistant_message":
                    if event["name"] != speaking:
                        speaking = event["name"]
                        print(f"\n{speaking}: ", end="", file=out)
                    print(event["content"], end="", file=out, flush=True)
                elif kind == "stop_reason":
                    print(f"\n\n[stop reason: {event['stop_reason']}]", file=out)
                elif kind == "usage_statistics":
                    print(f"[{event['step_count']} steps, {event['total_tokens']} tokens]", file=out)
                elif kind == "error_message":
                    print(f"\n[error: {event['message']}]", file=out)
                    return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chorus", description=__doc__.split("\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="run the API server")
    settings = get_settings()
    serve_cmd.add_argument("--host", default=settings.host)
    serve_cmd.add_argument("--port", type=int, default=settings.port)
    serve_cmd.add_argument("--reload", action="store_true")
    demo_cmd = sub.add_parser("demo", help="create a round-robin group and stream a conversation")
    demo_cmd.add_argument("--url", help="a running Chorus server (default: start one)")
    demo_cmd.add_argument("--message", default="Let's plan a tiny launch for Chorus. Ideas?")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.host, args.port, args.reload)
        return 0
    if args.url:
        return demo(args.url, args.message)
    with running_server() as server:
        return demo(server.url, args.message)


if __name__ == "__main__":
    raise SystemExit(main())
