"""The MCP network policy: which `server_url`s a tenant may make the server connect to."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from chorus.settings import Settings
from chorus.tools.mcp_policy import McpUrlPolicy, McpUrlRefused, policy_for

STRICT = McpUrlPolicy(allow_private=False)
LOCAL = McpUrlPolicy(allow_private=True)

NEVER = ["169.254.169.254", "[fd00:ec2::254]", "[fe80::1]", "[::ffff:169.254.169.254]", "0.0.0.0", "224.0.0.1"]
PRIVATE = ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "[::1]", "[fd12::1]", "localhost"]


@pytest.mark.parametrize("host", NEVER)
@pytest.mark.parametrize("policy", [STRICT, LOCAL, McpUrlPolicy(allow_private=True, allowed_hosts=frozenset(NEVER))])
async def test_link_local_and_unroutable_addresses_are_never_reached(policy: McpUrlPolicy, host: str) -> None:
    with pytest.raises(McpUrlRefused):
        await policy.resolve(host, 80)


@pytest.mark.parametrize("host", PRIVATE)
async def test_private_addresses_follow_the_policy(host: str) -> None:
    with pytest.raises(McpUrlRefused, match="loopback or private"):
        await STRICT.resolve(host, 80)
    assert await LOCAL.resolve(host, 80)
    assert await McpUrlPolicy(allow_private=False, allowed_hosts=frozenset({host})).resolve(host, 80)


async def test_public_addresses_are_allowed() -> None:
    assert await STRICT.resolve("93.184.215.14", 443) == ["93.184.215.14"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://127.0.0.1/", "http:// or https://"),
        ("http:///mcp", "no host"),
        ("http://user:pw@example.com/mcp", "credentials"),
        ("http://example.com:99999/mcp", "not a valid URL"),
    ],
)
def test_urls_that_are_not_plain_http_are_refused(url: str, reason: str) -> None:
    with pytest.raises(McpUrlRefused, match=reason):
        LOCAL.check_url(url)


def test_auto_allows_private_networks_for_one_tenant_only() -> None:
    assert policy_for(Settings()).allow_private
    assert not policy_for(Settings(api_keys=SecretStr("a=alice,b=bob"))).allow_private
    assert not policy_for(Settings(api_keys_parameter="/chorus/keys")).allow_private
    assert policy_for(Settings(api_keys=SecretStr("a=alice,b=bob"), mcp_private_networks="allow")).allow_private
    assert not policy_for(Settings(mcp_private_networks="deny")).allow_private
    hosts = policy_for(Settings(mcp_allowed_hosts=" MCP.internal , tools.lan")).allowed_hosts
    assert hosts == frozenset({"mcp.internal", "tools.lan"})
