"""Who the tenants are: the `key=tenant` pairs of the API keys, and whether there is more than one.

Kept apart from the API so what must know whether tenants share this server
(the tool executor's selection) need not import the web layer.
"""

from __future__ import annotations

from pydantic import SecretStr

from chorus.settings import Settings

ANONYMOUS_TENANT = "default"


def parse_api_keys(raw: str | SecretStr | None) -> dict[str, str]:
    """`key=tenant,key2=tenant2` → mapping; a bare `key` maps to the anonymous tenant."""
    text = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
    keys: dict[str, str] = {}
    for item in (text or "").split(","):
        key, _, tenant = item.strip().partition("=")
        if key:
            keys[key] = tenant.strip() or ANONYMOUS_TENANT
    return keys


def multi_tenant(settings: Settings) -> bool:
    """True when several tenants may use this server: keys naming two tenants or more, or keys read
    from a parameter (their number can change at any time, so it counts as many)."""
    if settings.api_keys_parameter:
        return True
    return len(set(parse_api_keys(settings.api_keys).values())) > 1
