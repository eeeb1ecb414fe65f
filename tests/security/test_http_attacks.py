"""Attacks on the HTTP surface of a real server (uvicorn on loopback), keyless and with two tenants.

A web page driving a keyless local server (DNS rebinding, cross-site POST), a
body too large to hold, JSON that is not JSON (NaN, lone surrogates), cursors
past 63 bits, and a resume past the end of a live run. Requests that must not
reach the app are written on a raw socket, so the test sees when the server
answers, not only what.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from chorus.devserver import Server, running_server
from support import parse_sse

pytestmark = pytest.mark.e2e

KEYS = {"a": "key-a-0123456789", "b": "key-b-9876543210"}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def keyless() -> Iterator[Server]:
    with running_server({"CHORUS_API_KEYS": ""}) as server:
        yield server


@pytest.fixture(scope="module")
def tenants() -> Iterator[Server]:
    with running_server({"CHORUS_API_KEYS": ",".join(f"{k}=tenant-{t}" for t, k in KEYS.items())}) as server:
        yield server


def _client(server: Server, tenant: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {KEYS[tenant]}"} if tenant else {}
    return httpx.Client(base_url=server.url, timeout=60, headers=headers)


def _attack(server: Server, head: bytes, body_bytes: int, chunk: bytes, *, chunked: bool) -> tuple[int, int]:
    """Send `head`, then up to `body_bytes` of body in `chunk`s until the server answers.

    Returns the status and how many body bytes had been sent when the answer came."""
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=60)
    frame = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") if chunked else chunk
    answer = b""
    try:
        sock.sendall(head)
        sock.setblocking(False)
        sent = 0
        pending = memoryview(b"")
        while sent < body_bytes or pending:
            readable, writable, _ = select.select([sock], [sock], [], 60)
            if readable:
                break
            assert writable, "the server neither read the body nor answered for 60 s"
            if not pending:
                pending, sent = memoryview(frame), sent + len(chunk)
            try:
                pending = pending[sock.send(pending) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        if chunked and sent >= body_bytes and not pending:
            sock.sendall(b"0\r\n\r\n")  # all sent, unanswered: end the body so the server answers at all
        while b"\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 "), answer
    return int(answer.split()[1]), sent


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# a web page driving a keyless server


def test_dns_rebinding_host_is_refused_without_keys(keyless: Server) -> None:
    with _client(keyless) as client:
        for host in ("evil.example", "evil.example:80", "attacker.127.0.0.1.nip.io"):
            response = client.post("/v1/tools", headers={"Host": host}, json={"source_code": "def f():\n  pass"})
            assert response.status_code == 403, (host, response.text)
            assert "DNS rebinding" in response.json()["detail"]
        assert client.get("/v1/tools").json() == [], "nothing was created"
        port = urlsplit(keyless.url).port
        assert client.get("/v1/agents", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_cross_site_post_is_refused_without_keys(keyless: Server) -> None:
    with _client(keyless) as client:
        for origin in ("https://evil.example", "null"):
            response = client.post("/v1/agents", headers={"Origin": origin}, json={"name": "pwned"})
            assert response.status_code == 403, response.text
        assert client.post("/v1/agents", headers={"Origin": keyless.url}, json={"name": "mine"}).status_code == 200
        assert [a["name"] for a in client.get("/v1/agents").json()] == ["mine"]


def test_with_keys_any_host_is_served_to_a_keyholder(tenants: Server) -> None:
    with _client(tenants, "a") as client:
        assert client.get("/v1/agents", headers={"Host": "chorus.example.com"}).status_code == 200
    with _client(tenants) as anonymous:
        assert anonymous.get("/v1/agents", headers={"Host": "chorus.example.com"}).status_code == 401


# bodies too large to hold


@pytest.mark.parametrize("mode", ["keyless", "tenants"])
def test_a_declared_oversized_body_is_refused_before_it_is_sent(mode: str, request: pytest.FixtureRequest) -> None:
    server: Server = request.getfixturevalue(mode)
    total = 100 * MIB
    auth = f"Authorization: Bearer {KEYS['a']}\r\n" if mode == "tenants" else ""
    head = (
        f"POST /v1/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {total}\r\n\r\n"
    ).encode()
    status, sent = _attack(server, head, total, b" " * (64 * 1024), chunked=False)
    assert status == 413
    assert sent < total // 2, f"the answer came only after {sent} of {total} bytes"


def test_a_chunked_oversized_body_is_not_held(keyless: Server) -> None:
    with _client(keyless) as client:  # warm up: the first requests build models and caches
        for _ in range(3):
            client.post("/v1/agents", json={"name": "warm"})
    before = _rss(keyless.pid)
    total = 64 * MIB
    head = b"POST /v1/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n"
    status, sent = _attack(keyless, head, total, b"x" * (64 * 1024), chunked=True)
    assert status == 413
    assert sent < total // 2, f"the answer came only after {sent} of {total} bytes"
    assert _rss(keyless.pid) - before < total // 2, "the server kept the body it refused"
    with _client(keyless) as client:
        assert client.get("/v1/health").status_code == 200


# JSON that is not JSON, cursors past 63 bits


@pytest.mark.parametrize("mode", ["keyless", "tenants"])
def test_nan_infinity_and_surrogates_are_422(mode: str, request: pytest.FixtureRequest) -> None:
    server: Server = request.getfixturevalue(mode)
    with _client(server, "a" if mode == "tenants" else None) as client:
        agent = client.post("/v1/agents", json={"name": "Ada"}).json()
        group = client.post("/v1/groups", json={"agent_ids": [agent["id"]]}).json()
        for path, text in [
            (f"/v1/groups/{group['id']}/messages", '{"input": "hi", "max_steps": NaN}'),
            (f"/v1/groups/{group['id']}/messages", '{"input": "\\ud800"}'),
            ("/v1/blocks", '{"label": "notes", "limit": Infinity}'),
            ("/v1/blocks", '{"label": "notes", "value": "\\udfff"}'),
            ("/v1/agents", '{"name": "\\ud800"}'),
            ("/v1/agents", '{"name": "a", "metadata": ' + "[" * 5000 + "]" * 5000 + "}"),
        ]:
            response = client.post(path, content=text.encode(), headers={"Content-Type": "application/json"})
            assert response.status_code == 422, (path, text[:60], response.text)
            assert response.json()["detail"].startswith("body")
        assert client.get("/v1/health").status_code == 200


def test_huge_cursors_are_422_and_the_connection_lives(tenants: Server) -> None:
    with _client(tenants, "a") as client:
        agent = client.post("/v1/agents", json={"name": "Ada", "metadata": {"scripted": {"tokens": 2}}}).json()
        group = client.post("/v1/groups", json={"agent_ids": [agent["id"]]}).json()
        run = client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"}).json()
        for after in (10**30, 2**63):
            body = client.post(
                f"/v1/runs/{run['id']}/stream", content=f'{{"starting_after": {after}}}'.encode(),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            assert body.status_code == 422, body.text
            header = client.post(f"/v1/runs/{run['id']}/stream", headers={"Last-Event-ID": str(after)}, json={})
            assert header.status_code == 422, header.text
            assert client.get(f"/v1/runs?limit={after}").status_code == 422
        assert client.get(f"/v1/runs/{run['id']}").status_code == 200
    with _client(tenants, "b") as other:
        assert other.post(f"/v1/runs/{run['id']}/stream", json={"starting_after": 2**63 - 1}).status_code == 404


def test_resume_past_the_end_of_a_live_run_waits_then_ends(tenants: Server) -> None:
    with _client(tenants, "b") as client:
        scripted = {"scripted": {"tokens": 30, "delay_s": 0.02}}
        agents = [client.post("/v1/agents", json={"name": n, "metadata": scripted}).json() for n in ("Ada", "Bo")]
        group = client.post("/v1/groups", json={"agent_ids": [a["id"] for a in agents]}).json()
        run = client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"}).json()
        assert client.get(f"/v1/runs/{run['id']}").json()["status"] in ("created", "running")
        with client.stream("POST", f"/v1/runs/{run['id']}/stream", json={"starting_after": 2**63 - 1}) as resumed:
            assert resumed.status_code == 200
            text = "".join(resumed.iter_text())
        assert [e.data for e in parse_sse(text) if e.data != '{"message_type":"ping"}'] == ["[DONE]"]
        assert client.get(f"/v1/runs/{run['id']}").json()["status"] == "completed", "[DONE] before the run ended"
        again = client.post(f"/v1/runs/{run['id']}/stream", json={"starting_after": 10_000})
        assert [e.data for e in parse_sse(again.text)] == ["[DONE]"]
