"""Running a custom tool's source in a child interpreter, so user code never runs in the server.

The child is `python -I -u -X utf8 -c RUNNER <fd>`: isolated mode ignores the
server's `PYTHON*` variables and keeps the working directory off `sys.path`
(a tool cannot shadow imports by writing files), `-u` sends every print to
the pipe at once (nothing is lost when the tool dies mid-way), and UTF-8 mode
makes the child's encodings independent of the host locale.

Result channel: the request goes in on stdin, the tool's stdout and stderr are
plain pipes the server reads (so prints of subprocesses and C extensions are
captured too), and the result comes back as one JSON object on a separate
pipe whose write end is passed to the child as `<fd>`. Nothing the tool
prints can be mistaken for its result, and no sentinel or stream swapping is
needed. The channel closing without a result means the child crashed.

Process group: the child starts a session of its own, and when the call ends
(returned, timed out, crashed, cancelled) the whole group is killed, so
nothing a tool spawned outlives the call. A process that leaves the session
(`setsid`) escapes this: run on its own, the child contains mistakes, it is
not a security boundary against hostile code. The `sandbox` adapter
(`chorus.tools.bubblewrap`) starts the same child behind a command prefix
that puts it in namespaces of its own, and asks the runner to confine itself
(`Confinement`) before it reads the tool's source.

Environment: the child sees only PATH, HOME, LANG and what the caller passes.
Tool code is user code and the server's environment holds its secrets
(provider API keys, AWS credentials), so nothing is inherited by default; a
tool that needs a key gets it explicitly through `env`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chorus.tools.execution import ToolResult

__all__ = [
    "INHERITED_ENV",
    "OUTPUT_BYTE_LIMIT",
    "RUNNER",
    "ChildLaunch",
    "Confinement",
    "ToolResult",
    "run_child",
    "run_tool",
    "stream_cut_marker",
    "timed_out",
    "value_cut_marker",
]

OUTPUT_BYTE_LIMIT = 1 << 20
"""Bytes kept of each of the tool's stdout and stderr; the rest is read (so the tool never blocks) and counted."""

INHERITED_ENV = ("PATH", "HOME", "LANG")
"""The only server variables a tool sees."""

_REAP_GRACE_S = 5.0
"""How long to wait for the killed group's pipes to close; only a process that left the session needs it."""

RUNNER = r"""
import json, os, sys, types

def confine(rules):
    import ctypes, resource
    libc = ctypes.CDLL(None, use_errno=True)
    def check(result, what):
        if result != 0:
            raise OSError(ctypes.get_errno(), f"cannot {what}")
    check(libc.prctl(38, 1, 0, 0, 0), "set no_new_privs")  # PR_SET_NO_NEW_PRIVS: no setuid binary regains root
    for name, value in rules["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    uid = rules["uid"]
    if uid is None:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # every capability goes with uid 0
    check(libc.prctl(4, 1, 0, 0, 0), "stay dumpable")  # PR_SET_DUMPABLE: /proc/self stays ours to write
    check(libc.unshare(0x10000000), "unshare the user namespace")  # CLONE_NEWUSER
    for path, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{uid} {uid} 1")):
        with open(f"/proc/self/{path}", "w") as f:
            f.write(text)

def call(request):
    import linecache
    source, name = request["source"], request["name"]
    linecache.cache["<tool>"] = (len(source), None, source.splitlines(True), "<tool>")
    module = types.ModuleType("__tool__")
    sys.modules["__tool__"] = module
    exec(compile(source, "<tool>", "exec"), module.__dict__)
    fn = module.__dict__.get(name)
    if not callable(fn):
        raise NameError(f"tool source defines no function {name!r}")
    result = fn(**request["arguments"])
    if isinstance(result, types.CoroutineType):
        import asyncio
        result = asyncio.run(result)
    return result

def render(value):
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return repr(value)

def describe(exc):
    import traceback
    if isinstance(exc, SyntaxError):
        head = f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
    else:
        head = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<tool>"][-3:]
    if not frames:
        return head
    tail = "".join(traceback.format_list(frames)).rstrip()
    return head + "\nTraceback (tool frames, most recent call last):\n" + tail

def main():
    channel = int(sys.argv[1])
    os.set_inheritable(channel, False)
    request = json.loads(sys.stdin.buffer.read())
    if request["confine"] is not None:
        confine(request["confine"])  # before any of the tool's code runs; a failure is a crash, never a run
    try:
        status, value = "success", render(call(request))
    except BaseException as exc:
        status, value = "error", describe(exc)
    limit = request["limit"]
    report = {"status": status, "value": value[:limit], "cut": max(0, len(value) - limit)}
    with open(channel, "w", encoding="utf-8") as out:
        out.write(json.dumps(report))

main()
"""
"""The child's program. Truncation happens in the child so a huge return value never crosses the pipe."""


@dataclass(frozen=True, slots=True)
class Confinement:
    """What the runner does to itself before it reads the tool's source (the `sandbox` adapter's part inside)."""

    limits: Mapping[str, int]
    """`resource` limit names (`RLIMIT_AS`, ...) and their value, set soft and hard so the tool cannot raise them."""
    uid: int | None = None
    """Drop to this uid and a user namespace of its own (a server running as root), or stay (bwrap mapped one)."""


@dataclass(frozen=True, slots=True)
class ChildLaunch:
    """How the child interpreter is started: the plain child of `run_tool`, or one behind a command prefix."""

    prefix: tuple[str, ...] = ()
    """Command run in front of the interpreter (`bwrap ...`); it must pass the stdio and the result pipe through."""
    env: Mapping[str, str] | None = None
    """Replaces the inherited `INHERITED_ENV` variables (the sandbox's own PATH and HOME); the call's `env` is added."""
    confinement: Confinement | None = None
    scratch_dir: bool = True
    """Run in a fresh temporary directory of the host; a prefix that gives the child its own tmpfs needs none."""


PLAIN_CHILD = ChildLaunch()
"""The child on its own: today's `subprocess` behaviour."""


async def run_tool(
    source_code: str,
    name: str,
    arguments: dict[str, Any],
    *,
    timeout_s: float = 30.0,
    return_char_limit: int = 50_000,
    env: Mapping[str, str] | None = None,
) -> ToolResult:
    """Call `name(**arguments)` from `source_code` in a child interpreter (awaited when it is a coroutine).

    Every failure of the tool is a `status="error"` result, never an exception: the
    model reads the error and can try again. Cancelling the caller kills the child.
    """
    return await run_child(
        source_code, name, arguments, timeout_s=timeout_s, return_char_limit=return_char_limit, env=env
    )


async def run_child(
    source_code: str,
    name: str,
    arguments: Mapping[str, Any],
    *,
    timeout_s: float = 30.0,
    return_char_limit: int = 50_000,
    env: Mapping[str, str] | None = None,
    launch: ChildLaunch = PLAIN_CHILD,
) -> ToolResult:
    """`run_tool`, with the child started as `launch` says."""
    if timeout_s <= 0 or return_char_limit < 0:
        raise ValueError(
            f"timeout_s must be positive and return_char_limit not negative: {timeout_s}, {return_char_limit}"
        )
    started = time.monotonic()
    confine = (
        None
        if launch.confinement is None
        else {"limits": dict(launch.confinement.limits), "uid": launch.confinement.uid}
    )
    request = json.dumps(
        {"source": source_code, "name": name, "arguments": arguments, "limit": return_char_limit, "confine": confine}
    )
    command = (*launch.prefix, sys.executable, "-I", "-u", "-X", "utf8", "-c", RUNNER)
    child_env = {**(launch.env if launch.env is not None else _inherited_env()), **(env or {})}
    # the cwd, so files a tool writes land nowhere that matters
    scratch = tempfile.mkdtemp(prefix="chorus-tool-") if launch.scratch_dir else None
    try:
        outcome = await _call(command, request.encode(), timeout_s, return_char_limit, child_env, scratch)
    finally:
        if scratch is not None:
            await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)
    report, returncode, (out, out_cut), (err, err_cut) = outcome
    stdout, stderr = _lines(out, out_cut, "stdout"), _lines(err, err_cut, "stderr")
    duration = time.monotonic() - started
    if report is None:
        return ToolResult(timed_out(name, timeout_s), "error", stdout, stderr, duration)
    parsed = _parse(report)
    if parsed is None:
        value = crash_report(name, returncode, stderr) if not report else f"Tool {name} sent a malformed result"
        return ToolResult(value, "error", stdout, stderr, duration)
    status, value, cut = parsed
    if cut:
        value += value_cut_marker(cut, return_char_limit)
    return ToolResult(value, status, stdout, stderr, duration)


_Captured = tuple[bytes, int]
"""Bytes kept of a stream and how many more were cut."""


async def _call(
    command: tuple[str, ...], request: bytes, timeout_s: float, limit: int, env: dict[str, str], cwd: str | None
) -> tuple[bytes | None, int | None, _Captured, _Captured]:
    """The raw report (None on timeout, empty when the child died without one), exit code, stdout and stderr."""
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            str(write_fd),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(write_fd,),
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    streams = [asyncio.ensure_future(_drain(s, OUTPUT_BYTE_LIMIT)) for s in (proc.stdout, proc.stderr)]
    channel = asyncio.StreamReader()
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    transport: asyncio.BaseTransport | None = None
    report: bytes | None = None
    try:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(channel), pipe)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it died before reading
                    proc.stdin.write(request)
                    await proc.stdin.drain()
                proc.stdin.close()
                # ensure_ascii JSON: at most 12 bytes a character, plus the envelope
                report, _ = await _drain(channel, 12 * limit + 4096)  # cut short: fails to parse
    finally:
        _kill_group(proc.pid)  # the call is over: whatever the tool started goes with it
        proc.stdin.close()
        # read the pipes to their end before leaving: `wait()` can return with output still buffered
        reaped = asyncio.ensure_future(proc.wait())
        _, pending = await asyncio.wait([reaped, *streams], timeout=_REAP_GRACE_S)
        for task in pending:
            task.cancel()
        if transport is not None:
            transport.close()
        else:
            pipe.close()
    out, err = (task.result() if task.done() and not task.cancelled() else (b"", 0) for task in streams)
    return report, proc.returncode, out, err


async def _drain(stream: asyncio.StreamReader, cap: int) -> _Captured:
    """Read to the end, keeping the first `cap` bytes: a writer blocked on a full pipe never finishes."""
    kept = bytearray()
    cut = 0
    while chunk := await stream.read(1 << 16):
        room = max(0, cap - len(kept))
        kept += chunk[:room]
        cut += max(0, len(chunk) - room)
    return bytes(kept), cut


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pid, signal.SIGKILL)


def _inherited_env() -> dict[str, str]:
    env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
    env.setdefault("PATH", os.defpath)
    return env


def _parse(report: bytes) -> tuple[Literal["success", "error"], str, int] | None:
    try:
        parsed = json.loads(report)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    status, value, cut = parsed.get("status"), parsed.get("value"), parsed.get("cut")
    if status not in ("success", "error") or not isinstance(value, str) or not isinstance(cut, int):
        return None
    return ("success" if status == "success" else "error"), value, cut


_SIGNALS = frozenset(int(s) for s in signal.Signals)


def crash_report(name: str, returncode: int | None, stderr: list[str]) -> str:
    """Why a tool's process ended without a result. A signal that killed the tool's interpreter
    comes back as a negative code when it was the process waited on, and as 128 + the signal
    when bubblewrap, its parent in the sandbox, was (bubblewrap exits so for a killed child)."""
    killed_by = -returncode if returncode is not None and returncode < 0 else None
    if returncode is not None and returncode > 128 and returncode - 128 in _SIGNALS:
        killed_by = returncode - 128
    if returncode is None:
        how = "did not exit"
    elif killed_by is not None:
        try:
            how = f"was killed by {signal.Signals(killed_by).name} (exit code {returncode})"
        except ValueError:
            how = f"was killed by signal {killed_by} (exit code {returncode})"
    else:
        how = f"exited with code {returncode}"
    tail = "\n".join(stderr[-10:])
    return f"Tool {name} {how} without returning a result" + (f"; its stderr ends:\n{tail}" if tail else "")


def _lines(data: bytes, cut: int, stream: str) -> list[str]:
    lines = data.decode("utf-8", errors="replace").splitlines()
    if cut:
        lines.append(stream_cut_marker(cut, stream))
    return lines


def timed_out(name: str, timeout_s: float) -> str:
    """What the model reads when a tool ran out of time, whichever executor ran it."""
    return f"Tool {name} timed out after {timeout_s} s"


def value_cut_marker(cut: int, return_char_limit: int) -> str:
    """Appended to a return value cut at `return_char_limit`, so the model knows it is incomplete."""
    return f"\n[... {cut} more characters cut: the result exceeded return_char_limit={return_char_limit}]"


def stream_cut_marker(cut: int, stream: str) -> str:
    """The last line of a stdout or stderr cut at `OUTPUT_BYTE_LIMIT`."""
    return f"[... {cut} more bytes of {stream} cut: the limit is {OUTPUT_BYTE_LIMIT} bytes]"
