"""The README's and docs' examples, run as written against a live server.

Every fenced `sh`, `bash` or `python` block in `README.md` and `docs/*.md` runs, unless its
info string says `norun` (deployment commands that need an AWS account, the set-up commands
that would install or serve forever). A block talks to the `make run` address
(`localhost:8283` / `127.0.0.1:8283`); here that address is a real server on a free port,
which is the only thing rewritten. An HTTP error fails the block (curl runs with
`--fail-with-body`), so an example that silently stops working fails this test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chorus.devserver import Server, running_server

ROOT = Path(__file__).resolve().parents[2]
RUNNABLE = {"sh", "bash", "python"}
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Example:
    where: str
    language: str
    code: str

    def __str__(self) -> str:
        return self.where


def examples() -> list[Example]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for match in FENCE.finditer(text):
            info = match.group(1).split()
            if not info or info[0] not in RUNNABLE or "norun" in info:
                continue
            line = text[: match.start()].count("\n") + 1
            found.append(Example(f"{path.relative_to(ROOT)}:{line}", info[0], match.group(2)))
    return found


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as s:
        yield s


def test_the_docs_have_runnable_examples() -> None:
    assert any(e.where.startswith("README.md") for e in examples())


@pytest.mark.parametrize("example", examples(), ids=str)
def test_example_runs_as_written(example: Example, server: Server, tmp_path: Path) -> None:
    port = server.url.rsplit(":", 1)[1]
    code = re.sub(r"(localhost|127\.0\.0\.1):8283", rf"\g<1>:{port}", example.code)
    env = {**os.environ, "CHORUS_PORT": port, "NO_COLOR": "1"}
    if example.language == "python":
        command = [sys.executable, "-c", code]
    else:
        preamble = 'set -euo pipefail\ncurl() { command curl --fail-with-body --silent --show-error "$@"; }\n'
        command = ["bash", "-c", preamble + code]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{example} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), f"{example} printed nothing"


LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def test_every_relative_link_in_the_docs_names_a_file_that_exists() -> None:
    broken = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target, _ in LINK.findall(path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)} → {target}")
    assert not broken, broken


def test_every_setting_is_documented_in_the_configuration_table() -> None:
    from chorus.settings import Settings

    table = (ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"`CHORUS_{name.upper()}`" not in table]
    assert not missing, missing
