"""The run viewer in a real browser: live streaming, resume after a dropped connection and a
reload, a run opened by URL, cancel, approvals, errors, the runs list and API keys.

Every run the page shows is compared with the run's event log from the API: each message
shown once, its text exactly the concatenation of its streamed chunks. Nothing here waits
for a duration: the tests wait for states of the page.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from chorus.devserver import Server, running_server
from support.ui import Viewer, assert_matches_log

SLOW = {"tokens": 40, "delay_s": 0.03}
EVENT_COUNTER = """() => {
  window.__bodyWrites = {};
  new MutationObserver((records) => {
    for (const r of records) {
      const msg = r.target.closest?.('[data-key]') ?? r.target.parentElement?.closest('[data-key]');
      if (msg && r.target.classList?.contains('body')) {
        window.__bodyWrites[msg.dataset.key] = (window.__bodyWrites[msg.dataset.key] ?? 0) + 1;
      }
    }
  }).observe(document.body, { childList: true, subtree: true, characterData: true });
}"""


def send(viewer: Viewer, text: str, *, background: bool = True) -> str:
    """Type and send a message on the group page; the id of the run it started."""
    page = viewer.page
    before = page.locator(".run").count()
    page.fill("#message", text)
    if page.is_checked("#opt-background") != background:
        page.click("#opt-background")
    page.click("#send")
    run_id = newest_run(viewer, before + 1)
    assert run_id.startswith("run-")
    return run_id


def newest_run(viewer: Viewer, count: int) -> str:
    """The id of the page's run number `count`, once its first event has named it."""
    viewer.page.wait_for_function(
        "(n) => document.querySelectorAll('.run')[n - 1]?.dataset.runId",
        arg=count,
    )
    run_id: str = viewer.page.locator(".run").nth(count - 1).get_attribute("data-run-id") or ""
    return run_id


def resumes(viewer: Viewer, run_id: str) -> list[int]:
    """The `starting_after` of every resume request the page made for the run."""
    out = []
    for request in viewer.requests:
        if request.url.endswith(f"/v1/runs/{run_id}/stream") and request.method == "POST":
            out.append(json.loads(request.post_data or "{}").get("starting_after", 0))
    return out


def test_round_robin_run_streams_live(viewer: Viewer) -> None:
    ids = [
        viewer.agent(name, tokens=24, delay_s=0.03, reasoning="Weighing options.") for name in ("Ada", "Brook", "Cyd")
    ]
    group = viewer.group(*ids, description="Launch planning")
    viewer.goto(f"/ui/groups/{group}")
    viewer.page.wait_for_selector("#message")
    viewer.page.evaluate(EVENT_COUNTER)
    viewer.page.set_viewport_size({"width": 1000, "height": 620})  # the screenshot: the chat, little else
    run_id = send(viewer, "Plan a tiny launch, <b>in bold</b>.")
    viewer.wait_text('.run [data-speaker="Brook"] .body', "tok5")
    live = viewer.run_section(run_id)
    assert live.get_attribute("data-done") == "false" or viewer.run(run_id)["status"] != "completed"
    viewer.shot("ui-group-midstream.png")
    viewer.wait_done(run_id)

    rendered = assert_matches_log(viewer, run_id)
    speakers = [item["speaker"] for item in rendered if item["kind"] == "assistant"]
    assert speakers == ["Ada", "Brook", "Cyd"]
    lanes = viewer.page.evaluate(
        "() => [...document.querySelectorAll('.msg.assistant')]"
        ".map((el) => [...el.classList].find((c) => c.startsWith('lane-')))"
    )
    assert len(set(lanes)) == 3, "one colour per speaker"
    writes = viewer.page.evaluate("() => window.__bodyWrites")
    chunks: dict[str, Any] = {}
    for event in viewer.log(run_id):
        if event["message_type"] == "assistant_message":
            key = f"assistant_message:{event['id']}"
            chunks[key] = chunks.get(key, 0) + 1
    assert all(writes.get(key, 0) >= n > 1 for key, n in chunks.items()), "each token was shown as it arrived"
    user = viewer.page.locator(".msg.user .body").last.text_content()
    assert user == "Plan a tiny launch, <b>in bold</b>.", "text is shown as text, never as markup"
    assert viewer.page.locator(".msg.user b").count() == 0
    footer = live.locator(".run-footer")
    assert footer.locator('[data-stop="end_turn"]').count() == 1
    assert re.search(r"\d+ tokens \(\d+ in, \d+ out\) · 3 steps", footer.text_content() or "")
    assert live.locator("details.reasoning").count() == 3, "reasoning is collapsed"
    assert not viewer.console_errors


def test_dropped_connection_and_reload_resume_after_the_last_rendered_seq(viewer: Viewer) -> None:
    group = viewer.group(viewer.agent("Ada", **SLOW), viewer.agent("Brook", **SLOW), viewer.agent("Cyd", **SLOW))
    viewer.goto(f"/ui/groups/{group}")
    run_id = send(viewer, "Talk among yourselves.")
    viewer.wait_text('.run [data-speaker="Ada"] .body', "tok10")
    viewer.page.evaluate("() => window.chorusViewer.dropConnections()")
    viewer.wait_text('.run [data-speaker="Brook"] .body', "tok10")
    after_drop = resumes(viewer, run_id)
    assert after_drop and min(after_drop) > 0, "the dropped stream resumed after what was rendered"

    viewer.page.reload()
    viewer.wait_done(run_id)
    after_reload = resumes(viewer, run_id)[len(after_drop) :]
    assert after_reload and after_reload[0] > max(after_drop), "the reloaded page resumed from its saved seq_id"
    assert_matches_log(viewer, run_id)
    assert viewer.page.locator(".msg.user").count() == 1
    assert viewer.page.evaluate(f"() => sessionStorage.getItem('chorus.run.{run_id}')") is None, "forgotten when done"
    assert not viewer.console_errors


def test_a_run_opened_by_url_replays_and_follows_live(viewer: Viewer) -> None:
    group = viewer.group(viewer.agent("Ada", **SLOW), viewer.agent("Brook", **SLOW))
    run_id = viewer.start_background_run(group, "Begin.")
    viewer.goto(f"/ui/runs/{run_id}")
    viewer.wait_text(".run .body", "tok1")
    assert viewer.run(run_id)["status"] == "running" or viewer.run_section(run_id).get_attribute("data-done") == "true"
    viewer.wait_done(run_id)
    assert_matches_log(viewer, run_id)
    assert viewer.page.locator(".msg.user .body").text_content() == "Begin.", "the run's input, from its messages"
    assert resumes(viewer, run_id)[0] == 0, "opened fresh, the page replays the log from the start"
    assert not viewer.console_errors


def test_cancel_an_active_run(viewer: Viewer) -> None:
    group = viewer.group(viewer.agent("Ada", tokens=400, delay_s=0.02), viewer.agent("Brook"))
    viewer.goto(f"/ui/groups/{group}")
    run_id = send(viewer, "Go on for a while.")
    viewer.wait_text('.run [data-speaker="Ada"] .body', "tok3")
    viewer.run_section(run_id).locator("button.cancel").click()
    viewer.wait_done(run_id)
    section = viewer.run_section(run_id)
    assert section.locator('[data-stop="cancelled"]').count() == 1
    assert section.locator("button.cancel").count() == 0
    assert viewer.run(run_id)["status"] == "cancelled"
    assert_matches_log(viewer, run_id)
    assert not viewer.console_errors


def test_an_agents_direct_run_opened_by_url_is_shown_and_cancelled(viewer: Viewer) -> None:
    agent_id = viewer.agent("Ada", tokens=2, delay_s=60)  # still running whenever the page shows it
    started = viewer.api.post(f"/v1/agents/{agent_id}/messages/async", json={"input": "Go on for a while."})
    run_id: str = started.raise_for_status().json()["id"]
    viewer.goto(f"/ui/runs/{run_id}")
    viewer.run_section(run_id).locator("button.cancel").click()  # a run with no group: cancelled through its agent
    viewer.wait_done(run_id)
    assert viewer.run_section(run_id).locator('[data-stop="cancelled"]').count() == 1
    assert viewer.run(run_id)["status"] == "cancelled"
    assert not viewer.console_errors


def test_approve_then_deny_a_tool_call_with_a_reason(viewer: Viewer) -> None:
    append = {"name": "core_memory_append", "arguments": {"label": "notes", "content": "likes tea"}}
    body: dict[str, Any] = {
        "name": "Ada",
        "metadata": {"scripted": {"steps": [[append]], "replies": ["Saved."]}},
        "memory_blocks": [{"label": "notes", "value": ""}],
        "tool_rules": [{"type": "requires_approval", "tool_name": "core_memory_append"}],
    }
    ada = viewer.api.post("/v1/agents", json=body).raise_for_status().json()["id"]
    group = viewer.group(ada, viewer.agent("Bo", replies=["Bo here."], use_tools=False))
    viewer.goto(f"/ui/groups/{group}")

    asking = send(viewer, "Remember that I like tea.")
    viewer.wait_done(asking)
    card = viewer.run_section(asking).locator(".msg.approval")
    assert "core_memory_append" in (card.text_content() or "")
    assert viewer.run_section(asking).locator('[data-stop="requires_approval"]').count() == 1
    card.locator("button.approve").click()
    answered = newest_run(viewer, 2)
    viewer.wait_done(answered)
    returned = viewer.run_section(answered).locator(".msg.tool_return")
    assert "success" in (returned.text_content() or "")
    block = viewer.api.get(f"/v1/agents/{ada}/core-memory/blocks/notes").json()
    assert block["value"] == "likes tea"
    assert card.locator("button").count() == 0, "an answered request has no buttons left"

    asking_again = send(viewer, "And cake.")
    viewer.wait_done(asking_again)
    card = viewer.run_section(asking_again).locator(".msg.approval")
    card.locator("input.reason").fill("not today")
    card.locator("button.deny").click()
    denied = newest_run(viewer, 4)
    viewer.wait_done(denied)
    section = viewer.run_section(denied)
    assert "reason: not today" in (section.locator(".msg.approval_response").text_content() or "")
    ret = section.locator(".msg.tool_return")
    assert "error" in (ret.locator("summary").text_content() or "")
    assert (ret.locator(".body").text_content() or "").endswith("User reason: not today")
    assert viewer.api.get(f"/v1/agents/{ada}/core-memory/blocks/notes").json()["value"] == "likes tea"
    assert not viewer.console_errors


def test_a_busy_group_says_409_and_links_the_active_run(viewer: Viewer) -> None:
    group = viewer.group(viewer.agent("Ada", tokens=300, delay_s=0.02))
    active = viewer.start_background_run(group)
    viewer.goto(f"/ui/groups/{group}")
    viewer.wait_text('.run [data-speaker="Ada"] .body', "tok1")  # the page follows the active run
    viewer.page.fill("#message", "Me too!")
    viewer.page.click("#send")
    alert = viewer.page.locator("#notices .notice.error")
    alert.wait_for()
    assert (alert.text_content() or "").startswith("Busy: ")
    assert active in (alert.text_content() or "")
    assert viewer.page.locator(".run").count() == 1, "a refused send adds no run"
    alert.locator("a.active-run").click()
    viewer.page.wait_for_url(f"**/ui/runs/{active}")
    viewer.run_section(active).locator("button.cancel").click()
    viewer.wait_done(active)
    # the 409 itself is logged by the browser as a failed resource load; nothing else is
    assert all("409" in error for error in viewer.console_errors), viewer.console_errors


def test_errors_are_shown_plainly(viewer: Viewer) -> None:
    page = viewer.page
    viewer.goto("/ui/groups/group-123e4567-e89b-42d3-8456-426614174000")
    assert (page.locator(".notice.error").text_content() or "").startswith("Not found: Group not found")
    viewer.goto("/ui/runs/run-nope")
    assert "Invalid address: path.run_id" in (page.locator(".notice.error").text_content() or "")

    failing = viewer.agent("Ada", tokens=6, error="llm_api_error", error_after_tokens=2)
    group = viewer.group(failing)
    viewer.goto(f"/ui/groups/{group}")
    page.click("#send")
    assert page.locator("#notices").text_content() == "Type a message first."
    page.fill("#opt-max-steps", "0")
    page.fill("#message", "hello")
    page.press("#message", "Control+Enter")
    page.locator("#notices .notice.error").wait_for()
    assert "Invalid input: body.max_steps" in (page.locator("#notices").text_content() or "")

    page.fill("#opt-max-steps", "5")
    run_id = send(viewer, "hello")
    viewer.wait_done(run_id)
    section = viewer.run_section(run_id)
    assert "Model failure (llm_error)" in (section.locator(".run-errors").text_content() or "")
    assert section.locator('[data-stop="llm_api_error"]').count() == 1
    assert viewer.run(run_id)["status"] == "failed"


def test_runs_list_updates_live(viewer: Viewer) -> None:
    quick = viewer.group(viewer.agent("Ada", tokens=5), description="Quick team")
    slow = viewer.group(viewer.agent("Brook", tokens=5000, delay_s=0.02), description="Slow team")
    finished = viewer.start_background_run(quick, "first")
    viewer.log(finished)  # follows the run to its end
    viewer.page.goto("/ui")
    viewer.wait_text("table", "Quick team")
    row = f'#runs tr[data-run-id="{finished}"][data-status="completed"]'
    viewer.page.wait_for_selector(row)
    cells = viewer.page.locator(row).locator("td").all_text_contents()
    assert cells[1] == "Quick team" and cells[3] == "end_turn" and cells[7] == "background"
    assert int(cells[6]) > 0 and re.fullmatch(r"[\d.]+ (ms|s)", cells[5])

    running = viewer.start_background_run(slow, "second")  # runs until cancelled
    viewer.page.wait_for_selector(f'#runs tr[data-run-id="{running}"][data-status="running"]')  # no reload: it polls
    ids = viewer.page.evaluate("() => [...document.querySelectorAll('#runs tr')].map((tr) => tr.dataset.runId)")
    assert ids.index(running) < ids.index(finished), "newest first"
    viewer.shot("ui-runs.png")
    viewer.api.post(f"/v1/groups/{slow}/messages/cancel", json={"run_ids": [running]}).raise_for_status()
    viewer.page.wait_for_selector(f'#runs tr[data-run-id="{running}"][data-status="cancelled"]')
    assert not viewer.console_errors


@pytest.fixture(scope="module")
def keyed_server() -> Any:
    with running_server({"CHORUS_API_KEYS": "sk-alice=alice"}) as server:
        yield server


def test_a_refused_request_keeps_the_key_being_typed(browser: Any, keyed_server: Server, artifacts: Any) -> None:
    """A page's requests are refused together and polls go on being refused: one form, input kept."""
    with Viewer.open(browser, keyed_server, artifacts) as viewer:
        viewer.goto("/ui")
        viewer.page.fill("#api-key", "sk-al")
        refused = viewer.page.evaluate(
            """async () => {
                const api = await import('/ui/static/api.js');
                return api.get('/v1/groups').then(() => 'answered', (err) => err.status);
            }"""
        )
        assert refused == 401
        assert viewer.page.locator(".key-form").count() == 1
        assert viewer.page.input_value("#api-key") == "sk-al"


def test_api_key_is_asked_once_and_kept_in_session_storage(browser: Any, keyed_server: Server, artifacts: Any) -> None:
    with Viewer.open(browser, keyed_server, artifacts, api_key="sk-alice") as viewer:
        viewer.group(viewer.agent("Ada"), description="Alice's team")
        viewer.goto("/ui")
        viewer.page.fill("#api-key", "wrong")
        with viewer.page.expect_navigation():  # the page reloads with the key
            viewer.page.click(".key-form button")
        viewer.wait_text(".key-form", "The key was refused")
        viewer.page.fill("#api-key", "sk-alice")
        with viewer.page.expect_navigation():
            viewer.page.click(".key-form button")
        viewer.wait_text("table", "Alice's team")
        assert viewer.page.evaluate("() => sessionStorage.getItem('chorus.apiKey')") == "sk-alice"
        assert viewer.page.evaluate("() => localStorage.length") == 0
        with viewer.page.expect_navigation():
            viewer.page.locator("#key-status button").click()
        viewer.page.locator("#api-key").wait_for()
        assert viewer.page.evaluate("() => sessionStorage.getItem('chorus.apiKey')") is None
