"""Who the Host/Origin guard applies to, and `/docs` loading nothing from elsewhere."""

from __future__ import annotations

from pydantic import SecretStr

from chorus.api.api_docs import render
from chorus.api.http_policy import HttpPolicy, host_name, parse_hosts
from chorus.settings import Settings


def test_host_names_are_compared_without_port_case_or_trailing_dot() -> None:
    assert host_name("LocalHost.:8283") == "localhost"
    assert host_name("[::1]:8283") == "[::1]"
    assert host_name("127.0.0.1") == "127.0.0.1"
    assert parse_hosts(" a.example:1, [::1] ,,") == frozenset({"a.example", "[::1]"})


def test_only_a_keyless_server_outside_lambda_checks_hosts() -> None:
    policy = HttpPolicy()
    policy.configure(Settings(), has_keys=False, on_lambda=False)
    assert policy.allowed_hosts == frozenset({"127.0.0.1", "localhost", "[::1]"})
    policy.configure(Settings(api_keys=SecretStr("k=t")), has_keys=True, on_lambda=False)
    assert policy.allowed_hosts is None
    policy.configure(Settings(), has_keys=False, on_lambda=True)
    assert policy.allowed_hosts is None
    policy.configure(Settings(allowed_hosts="*"), has_keys=False, on_lambda=False)
    assert policy.allowed_hosts is None
    policy.configure(Settings(max_body_bytes=5000), has_keys=False, on_lambda=False)
    assert policy.max_body_bytes == 5000


def test_the_docs_page_has_no_script_and_escapes_the_document() -> None:
    page = render(
        {
            "info": {"title": "Chorus", "version": "1", "description": "<script>x</script>"},
            "paths": {"/v1/a": {"get": {"summary": "<b>", "description": "line\nline"}}},
        },
        "/base",
    )
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "src=" not in page and "http" not in page
    assert "<code>GET</code>" in page and "/base/openapi.json" in page
