"""What the HTTP guards enforce, decided once the app knows its settings (its lifespan)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chorus.settings import Settings

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


@dataclass(slots=True)
class HttpPolicy:
    """Shared by the guards, which are built before the settings are read: the lifespan fills it in."""

    allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS
    """`Host` names a request may carry; None: any (the server has API keys, or runs on Lambda)."""
    max_body_bytes: int = 4 * 1024 * 1024

    def configure(self, settings: Settings, *, has_keys: bool, on_lambda: bool) -> None:
        """With API keys a request must carry a key no web page knows, and on Lambda the Function URL's auth
        and its own host name decide who calls: only a keyless server outside Lambda checks `Host` and `Origin`."""
        self.max_body_bytes = settings.max_body_bytes
        hosts = parse_hosts(settings.allowed_hosts)
        self.allowed_hosts = None if has_keys or on_lambda or "*" in hosts else hosts


def parse_hosts(raw: str) -> frozenset[str]:
    """`a,B:8283,[::1]` → `{"a", "b", "[::1]"}`: names compared without their port, case-insensitively."""
    return frozenset(host_name(item) for item in raw.split(",") if item.strip())


def host_name(host: str) -> str:
    """The name of a `Host` value without its port (`[::1]:8283` → `[::1]`), lower-case, no trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name = host[: end + 1] if end > 0 else host
    else:
        name = host.partition(":")[0]
    return name.rstrip(".")
