"""The `sandbox` tool executor: the child interpreter inside Linux namespaces made by bubblewrap (`bwrap`).

What the tool sees: a read-only view of `/usr` and of the interpreter's own
prefixes (the venv with the server's packages, the base Python), the few
`/etc` files Python and the C library read, a fresh `/proc` of its own PID
namespace (only its own processes: not the server, not another tenant's
tool), a minimal `/dev`, and a private size-bounded tmpfs at `/tmp` that is
its working directory and HOME. The root is read-only. No `/work`, no
database directory, no `/root`, no server environment (only PATH, HOME,
LANG and what the call passes).

Namespaces: PID, mount, IPC, UTS, cgroup, network (unless the operator
allows the network) and user. `--die-with-parent` and the PID namespace
make every descendant die with the call: when the call ends the runner's
process group is killed, bwrap's init goes with it, and the kernel kills
the rest of the namespace, `setsid()` or not.

Limits (address space, CPU seconds, processes, file size, open files) are
set by the runner on itself, soft and hard. RLIMIT_NPROC is not enforced for
uid 0 and counts per user, so a server running as root starts bwrap
keeping only CAP_SETUID/CAP_SETGID, and the runner drops to a uid of its
own for the call (random in a range no account uses) and unshares a user
namespace mapping only that uid: the process limit then counts that call's
processes alone, and the tool holds no capability on the host. A server
that is not root runs bwrap with `--unshare-user`, whose user namespace
gives the same per-call count.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import PurePosixPath

from chorus.tools.execution import ToolCall, ToolResult
from chorus.tools.sandbox import ChildLaunch, Confinement, run_child

__all__ = ["BubblewrapExecutor", "SandboxLimits", "bubblewrap_problem", "sandbox_prefix"]

SANDBOX_UID_BASE = 1 << 30
"""First uid a root server's tools run as: far above every account and every container's subordinate range."""
SANDBOX_UID_SPAN = 1 << 24
"""How many uids calls draw from at random: two concurrent calls (of any worker process) sharing one, and so one
process budget, has odds of about 1 in 16 million."""

TOOL_HOME = "/tmp"

ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
"""What the C library and Python read from `/etc` at start-up; nothing else of the host's `/etc`."""
NETWORK_ETC_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/ssl", "/etc/ca-certificates")
"""Name resolution and TLS roots, bound only when the network is allowed."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Per-call bounds; memory, CPU and file size hold per process of the call, processes for the whole call."""

    memory_mb: int = 512
    cpu_s: int = 30
    max_processes: int = 32
    max_file_mb: int = 16
    max_open_files: int = 256
    tmp_mb: int = 64
    network: bool = False

    def rlimits(self) -> dict[str, int]:
        mib = 1 << 20
        return {
            "RLIMIT_AS": self.memory_mb * mib,
            "RLIMIT_CPU": self.cpu_s,
            "RLIMIT_NPROC": self.max_processes,
            "RLIMIT_FSIZE": self.max_file_mb * mib,
            "RLIMIT_NOFILE": self.max_open_files,
            "RLIMIT_CORE": 0,
        }


def interpreter_roots() -> list[str]:
    """The directories the interpreter needs that `/usr` does not hold: its venv and its base installation."""
    roots: set[str] = set()
    for path in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix):
        roots.add(os.path.realpath(path))
        roots.add(os.path.abspath(path))
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    kept = sorted(r for r in roots if r != "/" and not _under(r, "/usr"))
    return [r for r in kept if not any(_under(r, other) and r != other for other in kept)]


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def sandbox_prefix(bwrap: str, limits: SandboxLimits, *, as_root: bool) -> tuple[str, ...]:
    """The `bwrap ...` command put in front of the interpreter."""
    args = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not limits.network:
        args.append("--unshare-net")
    if as_root:  # the runner drops to its own uid and user namespace (see the module's docstring)
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args.append("--unshare-user")
    args += ["--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for path in (*ETC_FILES, *(NETWORK_ETC_FILES if limits.network else ())):
        args += ["--ro-bind-try", path, path]
    # the tmpfs first: bwrap mounts in order, so an interpreter that lives under /tmp (a checkout or venv
    # there) is bound on top of the tmpfs instead of being hidden by it
    args += ["--perms", "1777", "--size", str(limits.tmp_mb << 20), "--tmpfs", TOOL_HOME]
    roots = interpreter_roots()
    for parent in sorted({str(a) for r in roots for a in PurePosixPath(r).parents if str(a) != "/"}, key=len):
        args += ["--perms", "0755", "--dir", parent]  # bwrap would make them 0700: closed to the tool's uid
    for root in roots:
        args += ["--ro-bind", root, root]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--remount-ro", "/", "--chdir", TOOL_HOME]
    return tuple(args)


def sandbox_env() -> dict[str, str]:
    """The tool's environment: a PATH inside the sandbox, HOME on its tmpfs, the server's LANG."""
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin", "HOME": TOOL_HOME}
    if "LANG" in os.environ:
        env["LANG"] = os.environ["LANG"]
    return env


class BubblewrapExecutor:
    """Runs each call in a fresh bwrap sandbox; isolates tenants from each other and from the server."""

    name = "sandbox"
    isolates_tenants = True

    def __init__(self, limits: SandboxLimits, bwrap: str = "bwrap") -> None:
        self.limits = limits
        self.as_root = os.geteuid() == 0
        self.prefix = sandbox_prefix(shutil.which(bwrap) or bwrap, limits, as_root=self.as_root)
        self.env = sandbox_env()

    def launch(self) -> ChildLaunch:
        uid = SANDBOX_UID_BASE + secrets.randbelow(SANDBOX_UID_SPAN) if self.as_root else None
        confinement = Confinement(self.limits.rlimits(), uid)
        return ChildLaunch(prefix=self.prefix, env=self.env, confinement=confinement, scratch_dir=False)

    async def run(self, call: ToolCall) -> ToolResult:
        return await run_child(
            call.source_code,
            call.name,
            call.arguments,
            timeout_s=call.timeout_s,
            return_char_limit=call.return_char_limit,
            env=call.env,
            launch=self.launch(),
        )


PROBE_TIMEOUT_S = 30.0


@functools.lru_cache(maxsize=4)
def bubblewrap_problem(bwrap: str = "bwrap") -> str | None:
    """Why the sandbox cannot run here (None when it can): `bwrap` missing or unable to make its namespaces.

    Probed once per process, by running a trivial tool the way every call runs (in a thread of
    its own, so it also works from inside a running event loop)."""
    found = shutil.which(bwrap)
    if found is None:
        return f"bubblewrap is not installed ({bwrap!r} not found on PATH; Debian package 'bubblewrap')"
    executor = BubblewrapExecutor(SandboxLimits(), found)
    call = ToolCall("probe", "def probe():\n    return 'ok'\n", "probe", {}, timeout_s=PROBE_TIMEOUT_S)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        result = pool.submit(asyncio.run, executor.run(call)).result()
    if (result.status, result.value) == ("success", "ok"):
        return None
    detail = " / ".join([*result.stderr[-3:], result.value][-3:])
    return f"bubblewrap cannot create its sandbox here: {detail}"
