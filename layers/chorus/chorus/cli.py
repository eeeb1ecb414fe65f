"""`chorus serve` and `chorus demo`.

`demo` talks to a Chorus server over HTTP like any client would: the one at
`--url` if given, else the one `make run` serves if it is up, else one it
starts itself on a free loopback port over the same SQLite file, so the
conversation is still there in `make run`'s viewer afterwards. It creates
three agents and a round-robin group (on the scripted model, with persona
replies, unless `CHORUS_DEFAULT_MODEL` names a real one), prints two rounds
of their conversation live, token by token, a colour per speaker, and ends
with the group's link in the run viewer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx
import uvicorn

from chorus.devserver import running_server
from chorus.settings import get_settings

PERSONAS = [
    (
        "Ada",
        "You are Ada, a pragmatic engineer. Keep answers short.",
        [
            "Ship the smallest thing that works: one page, one signup form, one launch post.",
            "Agreed on the risk. I can have the rollback script ready before we announce.",
        ],
    ),
    (
        "Brook",
        "You are Brook, a curious product designer. Ask one good question.",
        [
            "Love it. Who is the one person we most want to try it first, and what do they do next?",
            "Then the page should show that next step in the first screen, not the third.",
        ],
    ),
    (
        "Cyd",
        "You are Cyd, a careful reviewer. Point out one risk.",
        [
            "One risk: a launch spike on day one. Do we know what happens at ten times the traffic?",
            "Good. Let's write the three-line status note now, so nobody writes it in a hurry.",
        ],
    ),
]
"""Name, system prompt, and the scripted model's replies by turn (the offline demo is deterministic)."""

COLOURS = ("\033[36m", "\033[35m", "\033[33m")
BOLD, RESET = "\033[1m", "\033[0m"


def serve(host: str, port: int, reload: bool) -> None:
    uvicorn.run("chorus.api:app", host=host, port=port, reload=reload, log_level="info")


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    if response.status_code >= 400:
        raise SystemExit(f"POST {path} failed with {response.status_code}: {response.text}")
    data: dict[str, Any] = response.json()
    return data


def _colour(out: Any) -> bool:
    """Colour only on a terminal, and never when the user set NO_COLOR (no-color.org)."""
    return bool(getattr(out, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def demo(url: str, message: str, out: Any = None, *, api_key: str | None = None, viewer: str | None = None) -> int:
    """Create three agents and a round-robin group, stream two rounds of their conversation,
    and end with the link to the group in the run viewer (`viewer`: the server that will show it,
    when it is not `url`)."""
    out = out or sys.stdout  # looked up per call: a caller (or pytest) may have replaced it
    settings = get_settings()
    model = settings.default_model or "scripted/demo"
    paint = _colour(out)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=300), headers=headers) as client:
        agent_ids, colours = [], {}
        for i, (name, system, replies) in enumerate(PERSONAS):
            body: dict[str, Any] = {"name": name, "system": system, "model": model}
            if model.startswith("scripted/"):
                body["metadata"] = {"scripted": {"replies": replies, "delay_s": 0.03}}
            agent_ids.append(_post(client, "/v1/agents/", body)["id"])
            colours[name] = COLOURS[i % len(COLOURS)] if paint else ""
        config = {"manager_type": "round_robin", "max_turns": 2 * len(PERSONAS)}
        group = _post(
            client, "/v1/groups/", {"agent_ids": agent_ids, "description": "Chorus demo", "manager_config": config}
        )
        print(f"Group {group['id']}: round robin, {len(agent_ids)} agents, model {model}\n", file=out)
        print(f"{BOLD if paint else ''}You:{RESET if paint else ''} {message}", file=out)
        body = {"input": message, "stream_tokens": True}
        speaking: str | None = None
        with client.stream("POST", f"/v1/groups/{group['id']}/messages/stream", json=body) as response:
            if response.status_code >= 400:
                response.read()
                raise SystemExit(f"the send failed with {response.status_code}: {response.text}")
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                kind = event.get("message_type")
                if kind == "assistant_message":
                    if event["name"] != speaking:
                        speaking = event["name"]
                        colour = colours.get(speaking, "")
                        print(
                            f"\n{colour}{BOLD if paint else ''}{speaking}:{RESET if paint else ''}{colour} ",
                            end="",
                            file=out,
                        )
                    print(event["content"], end="", file=out, flush=True)
                elif kind == "stop_reason":
                    print(RESET if paint else "", file=out)
                    print(f"\nStop reason: {event['stop_reason']}", file=out)
                elif kind == "usage_statistics":
                    print(
                        f"Usage: {event['step_count']} model steps, {event['prompt_tokens']:,} prompt tokens "
                        f"+ {event['completion_tokens']:,} completion tokens",
                        file=out,
                    )
                elif kind == "error_message":
                    print(f"\nError: {event['message']}", file=out)
                    return 1
    print(f"\nSee it in the run viewer: {viewer or url}/ui/groups/{group['id']}", file=out)
    if viewer:
        print("(start the server first with `make run`)", file=out)
    return 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chorus", description=__doc__.split("\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="run the API server")
    settings = get_settings()
    serve_cmd.add_argument("--host", default=settings.host)
    serve_cmd.add_argument("--port", type=int, default=settings.port)
    serve_cmd.add_argument("--reload", action="store_true")
    demo_cmd = sub.add_parser("demo", help="create a round-robin group and stream a conversation")
    demo_cmd.add_argument(
        "--url", help="a running Chorus server (default: the one `make run` serves if it is up, else one started here)"
    )
    demo_cmd.add_argument("--api-key", help="bearer key, for a server with CHORUS_API_KEYS")
    demo_cmd.add_argument("--message", default="Let's plan a tiny launch for Chorus. Ideas?")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.host, args.port, args.reload)
        return 0
    local = f"http://{settings.host}:{settings.port}"
    if args.url or _answers(local):
        return demo(args.url or local, args.message, api_key=args.api_key)
    # the database `make run` serves, so the conversation is there when the user opens the viewer
    with running_server(db_path=settings.db_path) as server:
        return demo(server.url, args.message, api_key=args.api_key, viewer=local)


if __name__ == "__main__":
    raise SystemExit(main())
