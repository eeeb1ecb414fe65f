"""Lambda as `template.yaml` deploys it, offline: a function's settings, its process, its async invokes.

- `Template`: a function's memory and environment variables as CloudFormation
  would resolve them with the parameters' defaults (`!Ref`, `!Sub`, `!If` on
  the template's conditions), for a stack named `STACK` in `REGION`.
- `FunctionProcess`: one execution environment, a child interpreter running
  `lambda_loop.py` over the function's code directory; its resident set is
  read from `/proc/<pid>/status`.
- `InvokeQueue`: a loopback endpoint for the Lambda `Invoke` API
  (`AWS_ENDPOINT_URL_LAMBDA`) that queues each asynchronous invocation's
  payload and answers 202, as Lambda does; the caller delivers the events.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "chorus-memory"


def status_mb(pid: int) -> dict[str, float]:
    """The process's resident set now (`VmRSS`) and at its peak (`VmHWM`), in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


class _Loader(yaml.SafeLoader):
    """Keeps each CloudFormation tag as `{tag: value}` for `Template.resolve`."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_Loader.add_multi_constructor("!", _tagged)


@dataclass
class Template:
    """`template.yaml` with its parameters at their defaults; `refs` names the resources a `!Ref` may need."""

    refs: dict[str, str] = field(default_factory=dict)
    path: Path = ROOT / "template.yaml"

    def __post_init__(self) -> None:
        self.doc = yaml.load(self.path.read_text(), Loader=_Loader)
        parameters = {name: str(p.get("Default", "")) for name, p in self.doc["Parameters"].items()}
        pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::StackName": STACK}
        self.values = {**parameters, **pseudo, **self.refs}

    def resolve(self, value: Any) -> Any:
        if not isinstance(value, dict) or len(value) != 1:
            return value
        (tag, arg), = value.items()  # fmt: skip
        if tag == "Ref":
            return self.values[arg]
        if tag == "Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: self.values[m.group(1)], arg)
        if tag == "Equals":
            return self.resolve(arg[0]) == self.resolve(arg[1])
        if tag == "Not":
            return not self.resolve(arg[0])
        if tag == "Condition":
            return self.resolve(self.doc["Conditions"][arg])
        if tag == "If":
            condition, yes, no = arg
            return self.resolve(yes if self.resolve({"Condition": condition}) else no)
        raise ValueError(f"a tag this reader does not resolve: !{tag}")

    def memory_mb(self, function: str) -> int:
        default = self.doc["Globals"]["Function"]["MemorySize"]
        return int(self.resolve(self.doc["Resources"][function]["Properties"].get("MemorySize", default)))

    def environment(self, function: str) -> dict[str, str]:
        """The function's variables over the global ones, resolved (the Web Adapter's `AWS_*` ones left out)."""
        shared = self.doc["Globals"]["Function"]["Environment"]["Variables"]
        own = self.doc["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
        variables = {name: str(self.resolve(value)) for name, value in {**shared, **own}.items()}
        return {name: value for name, value in variables.items() if not name.startswith("AWS_")}


class FunctionProcess:
    """One execution environment of a function: its handler imported once, events handled one at a time."""

    def __init__(self, code: Path, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("lambda_loop.py")), str(code)],
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,  # its answers; its standard error is this process's
            text=True,
        )
        assert self._answer() == {"ready": True}

    @property
    def pid(self) -> int:
        return self.process.pid

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the function's process died ({self.process.wait()}): its traceback is above")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def invoke(self, event: Mapping[str, Any]) -> Any:
        """The handler's result; its exception (class and message) raised as a `RuntimeError`."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(event) + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        if "error" in answer:
            raise RuntimeError(f"{answer['error']}: {answer['message']}")
        return answer["result"]

    def peak_mb(self) -> float:
        return status_mb(self.pid)["VmHWM"]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class InvokeQueue:
    """The asynchronous invocations sent to the Lambda endpoint, in order: (function name, payload)."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()

    def next(self, timeout_s: float = 60) -> tuple[str, dict[str, Any]]:
        return self.events.get(timeout=timeout_s)

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Listen on a free loopback port; yields its URL (for `AWS_ENDPOINT_URL_LAMBDA`)."""
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                match = re.fullmatch(r"/2015-03-31/functions/([^/]+)/invocations", self.path.split("?")[0])
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if match is None or self.headers.get("X-Amz-Invocation-Type") != "Event":
                    self.send_response(400)  # only async invocations are expected here
                    self.end_headers()
                    return
                events.put((urllib.parse.unquote(match.group(1)), json.loads(body)))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
