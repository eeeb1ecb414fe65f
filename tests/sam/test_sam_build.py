"""SAM as users run it: `sam validate --lint`, `sam build`, and the built functions loaded as
`sam local invoke` would load them.

`sam local invoke` itself needs Lambda's runtime images, which cannot be pulled here, so these
tests do what it does short of the container: build with the real `sam build` (aws-sam-cli from
`make install`, in its own venv, and a Python 3.12 interpreter, the runtime of the template),
then start the build's own Python 3.12 with nothing on its path but the function's directory
(`/var/task`) and the layer's `python/` (`/opt/python`), import each handler from there and
feed it its `events/*.json`.

The template builds for arm64 (Graviton): its native wheels cannot load on an x86_64 test
machine, so the build as deployed is checked for what it holds, and a second build of the same
template for this machine's architecture is the one executed.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chorus.devserver import free_port
from support.lambda_events import EXPECTED, sse_payloads

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
LAMBDA_EVENTS = TESTS / "support"  # lambda_events imported bare: the support package itself needs more than the build


def _sam() -> str | None:
    local = ROOT / ".venv-sam" / "bin" / "sam"
    return str(local) if local.exists() else shutil.which("sam")


def _python312() -> str | None:
    """Python 3.12, the template's runtime: `sam build` refuses to build python3.12 functions without it."""
    candidates = [
        shutil.which("python3.12"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))),
    ]
    for candidate in filter(None, candidates):
        probe = [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"]
        try:  # a version manager's shim may exist and still not run 3.12
            if subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False).stdout.strip() == "True":
                return str(Path(candidate).resolve())
        except OSError:
            continue
    return None


SAM, PYTHON312 = _sam(), _python312()
pytestmark = [
    pytest.mark.skipif(SAM is None, reason="aws-sam-cli is not installed (`make install` puts it in .venv-sam)"),
    pytest.mark.skipif(PYTHON312 is None, reason="no Python 3.12 interpreter (python3.12 on PATH or pyenv's)"),
]


def _env(**extra: str) -> dict[str, str]:
    assert PYTHON312 is not None
    path = f"{Path(PYTHON312).parent}:{os.environ.get('PATH', os.defpath)}"
    return {"PATH": path, "HOME": os.environ.get("HOME", "/root"), "SAM_CLI_TELEMETRY": "0", **extra}


def _sam_run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert SAM is not None
    done = subprocess.run([SAM, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@dataclass(frozen=True)
class Build:
    root: Path

    def function(self, name: str) -> Path:
        return self.root / name

    @property
    def layer(self) -> Path:
        return self.root / "ChorusLayer" / "python"

    def handlers(self) -> dict[str, str]:
        """Built functions and their `Handler`, from the built template."""
        import yaml

        class Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
            pass

        Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
        template = yaml.load((self.root / "template.yaml").read_text(), Loader=Loader)
        return {
            name: resource["Properties"]["Handler"]
            for name, resource in template["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"
        }


def _build(template: Path, into: Path) -> Build:
    _sam_run(
        "build", "--template-file", str(template), "--build-dir", str(into / "build"),
        "--cache-dir", str(into / "cache"), "--region", "us-east-1",
    )  # fmt: skip
    return Build(into / "build")


@pytest.fixture(scope="module")
def deployed_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """The template as deployed (arm64)."""
    return _build(ROOT / "template.yaml", tmp_path_factory.mktemp("sam-arm64"))


@pytest.fixture(scope="module")
def host_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """The same template built for this machine's architecture, so its native code can run here."""
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine().lower()]
    into = tmp_path_factory.mktemp("sam-host")
    text = (ROOT / "template.yaml").read_text()
    for old, new in [
        ("Architectures: [arm64]", f"Architectures: [{arch}]"),
        ("BuildArchitecture: arm64", f"BuildArchitecture: {arch}"),
        ("CodeUri: functions/", f"CodeUri: {ROOT}/functions/"),
        ("ContentUri: layers/", f"ContentUri: {ROOT}/layers/"),
        ("DefinitionUri: statemachine/", f"DefinitionUri: {ROOT}/statemachine/"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    (into / "template.yaml").write_text(text)
    return _build(into / "template.yaml", into)


LAMBDA_UNZIPPED_LIMIT = 262_144_000
"""Lambda's limit on a function's unzipped code and layers together (250 MB)."""
ADAPTER_LAYER_ALLOWANCE = 20 * 1024 * 1024
"""Room kept for the Lambda Web Adapter layer the API function also carries (a few MB; not built here)."""


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def test_every_built_function_with_its_layer_fits_lambdas_unzipped_limit(deployed_build: Build) -> None:
    """A dependency that grows the layer past 250 MB fails `sam deploy`, not `sam build`: caught here."""
    layer = _size(deployed_build.layer)
    for name in deployed_build.handlers():
        total = layer + _size(deployed_build.function(name)) + (ADAPTER_LAYER_ALLOWANCE if name == "ApiFunction" else 0)
        assert total < LAMBDA_UNZIPPED_LIMIT, (name, total)


def test_the_template_passes_sam_validate_lint() -> None:
    assert "is a valid SAM Template" in _sam_run("validate", "--lint", "--region", "us-east-1").stdout


def test_the_deployed_build_holds_the_package_its_runtime_deps_and_no_dev_tools(deployed_build: Build) -> None:
    layer = deployed_build.layer
    assert (layer / "chorus" / "__init__.py").exists()
    assert (layer / "chorus" / "ui" / "static" / "index.html").exists()  # the run viewer ships in the layer
    assert glob.glob(str(layer / "pydantic_core" / "*.cpython-312-aarch64-linux-gnu.so"))  # Lambda's runtime
    for tool in ("pytest", "moto", "mypy", "playwright", "schemathesis"):
        assert not (layer / tool).exists(), tool
    handlers = deployed_build.handlers()
    assert handlers.pop("ApiFunction") == "run.sh"
    assert (deployed_build.function("ApiFunction") / "run.sh").exists()
    for name, handler in handlers.items():
        module, _, attribute = handler.rpartition(".")
        assert attribute == "handler" and (deployed_build.function(name) / f"{module}.py").exists(), name


def _python(build: Build, function: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The build's Python 3.12 in the function's directory, with Lambda's path and nothing else."""
    assert PYTHON312 is not None
    path = f"{build.function(function)}:{build.layer}:{LAMBDA_EVENTS}"
    return subprocess.run(
        [PYTHON312, *args],
        cwd=build.function(function),
        env=_env(PYTHONPATH=path, PYTHONNOUSERSITE="1", AWS_REGION="us-east-1", **env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_api_event_through_the_built_buffered_handler(host_build: Build, tmp_path: Path) -> None:
    done = _python(
        host_build,
        "ApiFunction",
        "-S",  # no site-packages: only what the build holds (and the standard library)
        str(TESTS / "sam" / "invoke_build.py"),
        str(tmp_path / "report.json"),
        CHORUS_STORE="sqlite",  # as `sam local invoke --env-vars` would, instead of the deployed table
        CHORUS_EXECUTOR="inprocess",
        CHORUS_DB_PATH=str(tmp_path / "chorus.db"),
        AWS_LAMBDA_FUNCTION_NAME="ApiFunction",
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    assert report["loaded_from"]["python"].startswith("3.12")
    for module in ("chorus", "pydantic_core"):
        assert report["loaded_from"][module].startswith(str(host_build.layer)), report["loaded_from"]
    assert sorted(report["results"]) == sorted(EXPECTED)
    for name, result in report["results"].items():
        EXPECTED[name](result)


def test_every_workflow_handler_loads_from_the_build(host_build: Build) -> None:
    handlers = host_build.handlers()
    handlers.pop("ApiFunction")
    assert handlers, "the template has task functions"
    for name, handler in handlers.items():
        module, _, attribute = handler.rpartition(".")
        probe = f"import {module}; print(type({module}.{attribute}).__name__, callable({module}.{attribute}))"
        done = _python(host_build, name, "-S", "-c", probe, CHORUS_STORE="dynamodb", AWS_LAMBDA_FUNCTION_NAME=name)
        assert done.returncode == 0, f"{name}: {done.stderr}"
        assert done.stdout.split()[-1] == "True", done.stdout


@pytest.fixture
def web_adapter_entry(host_build: Build, tmp_path: Path) -> Iterator[str]:
    """`run.sh` from the build, as the Lambda Web Adapter starts it (`python` is the runtime's)."""
    assert PYTHON312 is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(PYTHON312)
    port = free_port()
    task_root = host_build.function("ApiFunction")
    env = _env(
        PYTHONPATH=str(host_build.layer),  # /opt/python, which run.sh puts first, is not on this machine
        LAMBDA_TASK_ROOT=str(task_root),
        AWS_LWA_PORT=str(port),
        CHORUS_DB_PATH=str(tmp_path / "chorus.db"),
        CHORUS_STORE="sqlite",
        CHORUS_EXECUTOR="inprocess",
        PYTHONNOUSERSITE="1",
    )
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    process = subprocess.Popen(["bash", str(task_root / "run.sh")], cwd=task_root, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "run.sh exited"
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_web_adapter_entry_point_streams_a_group_run_from_the_build(web_adapter_entry: str) -> None:
    with httpx.Client(base_url=web_adapter_entry, timeout=30) as client:
        agents = [client.post("/v1/agents", json={"name": n}).json()["id"] for n in ("Ada", "Brook")]
        group = client.post("/v1/groups", json={"agent_ids": agents}).json()["id"]
        with client.stream(
            "POST", f"/v1/groups/{group}/messages/stream", json={"input": "hi", "stream_tokens": True}
        ) as response:
            assert response.status_code == 200
            body = "".join(response.iter_text())
    events = sse_payloads(body)
    assert [e["name"] for e in events if e["message_type"] == "assistant_message"][-1] == "Brook"
    assert body.rstrip().endswith("data: [DONE]")
