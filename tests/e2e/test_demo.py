"""`chorus demo` as a new user runs it: a conversation worth watching, kept where `make run` serves it."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from chorus import cli
from chorus.devserver import Server, free_port, running_server
from chorus.settings import get_settings


def _lines(persona: int) -> list[str]:
    return list(cli.PERSONAS[persona][2])


def test_demo_streams_each_persona_in_turn_and_links_the_viewer(server: Server) -> None:
    out = io.StringIO()
    assert cli.demo(server.url, "Plan a launch.", out) == 0
    text = out.getvalue()
    expected = [f"{cli.PERSONAS[i % 3][0]}: {_lines(i % 3)[i // 3]}" for i in range(6)]
    spoken = [line for line in text.splitlines() if line.split(":")[0] in {"Ada", "Brook", "Cyd"}]
    assert spoken == expected
    assert "\033[" not in text  # not a terminal: no colour codes
    assert "Usage: 6 model steps," in text and "prompt tokens + 96 completion tokens" in text
    group_id = text.split("/ui/groups/")[1].split()[0]
    assert f"{server.url}/ui/groups/{group_id}" in text
    history = httpx.get(f"{server.url}/v1/groups/{group_id}/messages", params={"order": "asc"}).json()
    said = [m["content"] for m in history if m["message_type"] == "assistant_message"]
    assert said == [line.split(": ", 1)[1] for line in expected]


def test_demo_colours_each_speaker_on_a_terminal(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    out = Terminal()
    assert cli.demo(server.url, "hi", out) == 0
    for colour, (name, _, _) in zip(cli.COLOURS, cli.PERSONAS, strict=True):
        assert f"{colour}{cli.BOLD}{name}:" in out.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    assert cli.demo(server.url, "hi", plain) == 0
    assert "\033[" not in plain.getvalue()


def test_demo_without_a_server_writes_to_the_database_make_run_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "chorus.db"
    port = free_port()  # nothing listens there: the demo starts its own server on `db`
    monkeypatch.setenv("CHORUS_DB_PATH", str(db))
    monkeypatch.setenv("CHORUS_PORT", str(port))
    get_settings.cache_clear()
    try:
        assert cli.main(["demo", "--message", "hello"]) == 0
    finally:
        get_settings.cache_clear()
    text = capsys.readouterr().out
    group_id = text.split("/ui/groups/")[1].split()[0]
    assert f"http://127.0.0.1:{port}/ui/groups/{group_id}" in text and "make run" in text
    with running_server(db_path=db) as later:  # what `make run` would serve afterwards
        groups = httpx.get(f"{later.url}/v1/groups").json()
    assert [g["id"] for g in groups] == [group_id]
