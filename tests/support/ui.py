"""The browser-test harness: a page on the viewer plus the API beside it, and the checks they share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from chorus.devserver import Server
from support import parse_sse

TEXT_KINDS = {"assistant_message": "content", "reasoning_message": "reasoning", "tool_return_message": "tool_return"}


@dataclass
class Viewer:
    page: Any
    api: httpx.Client
    server: Server
    artifacts: Path
    console_errors: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)

    @classmethod
    @contextmanager
    def open(cls, browser: Any, server: Server, artifacts: Path, api_key: str | None = None) -> Iterator[Viewer]:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        context = browser.new_context(base_url=server.url, viewport={"width": 1100, "height": 820})
        context.set_default_timeout(20_000)
        page = context.new_page()
        with httpx.Client(base_url=server.url, timeout=30, headers=headers) as api:
            viewer = cls(page, api, server, artifacts)
            page.on("console", lambda m: viewer.console_errors.extend([m.text] if m.type == "error" else []))
            page.on("pageerror", lambda e: viewer.console_errors.append(f"uncaught: {e}"))
            page.on("request", lambda r: viewer.requests.append(r))
            try:
                yield viewer
            finally:
                context.close()
        origin = urlsplit(server.url).netloc
        foreign = [
            r.url for r in viewer.requests if urlsplit(r.url).scheme != "data" and urlsplit(r.url).netloc != origin
        ]
        assert not foreign, f"the page made requests outside its server: {foreign}"

    # the API, for set-up and for the truth to compare the page with

    def agent(self, name: str, **script: Any) -> str:
        body: dict[str, Any] = {"name": name, "metadata": {"scripted": script}}
        agent_id: str = self.api.post("/v1/agents", json=body).raise_for_status().json()["id"]
        return agent_id

    def group(self, *agent_ids: str, description: str = "", **extra: Any) -> str:
        body = {"agent_ids": list(agent_ids), "description": description, **extra}
        group_id: str = self.api.post("/v1/groups", json=body).raise_for_status().json()["id"]
        return group_id

    def start_background_run(self, group_id: str, text: str = "Go.") -> str:
        """Start a streamed background run and hang up after its first event: it goes on without us."""
        body = {"input": text, "stream_tokens": True, "background": True}
        with self.api.stream("POST", f"/v1/groups/{group_id}/messages/stream", json=body) as response:
            assert response.status_code == 200, response.read()
            first = next(line for line in response.iter_lines() if line.startswith("data: {"))
        run_id: str = json.loads(first[6:])["run_id"]
        return run_id

    def run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.api.get(f"/v1/runs/{run_id}").raise_for_status().json()
        return run

    def log(self, run_id: str) -> list[dict[str, Any]]:
        """The run's whole event log (a background run's replay from seq 0), checked gapless."""
        events = parse_sse(self.api.post(f"/v1/runs/{run_id}/stream", json={"starting_after": 0}).text)
        assert events[-1].data == "[DONE]"
        payloads = [e.json for e in events[:-1] if e.id is not None]
        assert [p["seq_id"] for p in payloads] == list(range(1, len(payloads) + 1))
        return payloads

    # the page

    def goto(self, path: str) -> None:
        self.page.goto(path)

    def run_section(self, run_id: str) -> Any:
        return self.page.locator(f'.run[data-run-id="{run_id}"]')

    def wait_done(self, run_id: str) -> None:
        self.page.wait_for_selector(f'.run[data-run-id="{run_id}"][data-done="true"]')

    def wait_text(self, selector: str, text: str) -> None:
        """Until an element matching `selector` contains `text` (checked on every animation frame)."""
        self.page.wait_for_function(
            "([sel, text]) => [...document.querySelectorAll(sel)].some((el) => el.textContent.includes(text))",
            arg=[selector, text],
        )

    def rendered(self, run_id: str) -> list[dict[str, str]]:
        """Every message element of the run, in page order: its key, kind, speaker and text."""
        items: list[dict[str, str]] = self.page.evaluate(
            """(runId) => [...document.querySelectorAll(`.run[data-run-id="${runId}"] [data-key]`)].map((el) => ({
                key: el.dataset.key, kind: el.dataset.kind, speaker: el.dataset.speaker,
                text: el.querySelector('.body')?.textContent ?? '' }))""",
            run_id,
        )
        return items

    def shot(self, name: str, full_page: bool = False) -> Path:
        path = self.artifacts / name
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


def expected_messages(log: list[dict[str, Any]]) -> dict[str, str]:
    """What a correct page shows for a run's log: each message's key and its chunks concatenated."""
    texts: dict[str, str] = {}
    for event in log:
        kind = event["message_type"]
        if kind == "ping" and event.get("abandoned"):
            for message_id in event["abandoned"]["message_ids"]:
                texts = {k: v for k, v in texts.items() if not k.endswith(f":{message_id}")}
        if "id" not in event or kind in ("ping", "stop_reason", "usage_statistics", "error_message"):
            continue
        key = f"{kind}:{event['id']}"
        texts[key] = texts.get(key, "") + str(event.get(TEXT_KINDS.get(kind, ""), "") or "")
    return texts


def assert_matches_log(viewer: Viewer, run_id: str) -> list[dict[str, str]]:
    """The page shows each message of the run's log once, whole: no gap, no duplicate, nothing else."""
    log = viewer.log(run_id)
    rendered = [item for item in viewer.rendered(run_id) if item["kind"] != "user"]
    keys = [item["key"] for item in rendered]
    assert len(keys) == len(set(keys)), f"a message is shown twice: {keys}"
    expected = expected_messages(log)
    assert keys == list(expected), "the page shows exactly the log's messages, in log order"
    for item in rendered:
        if item["key"].split(":")[0] in ("assistant_message", "reasoning_message", "tool_return_message"):
            assert item["text"] == expected[item["key"]], f"{item['key']}: rendered text differs from the log"
    section = viewer.run_section(run_id)
    assert section.get_attribute("data-last-seq") == str(log[-1]["seq_id"]), "every event was folded in"
    return rendered
