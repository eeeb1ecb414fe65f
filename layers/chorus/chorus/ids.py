"""Letta-style identifiers: `<prefix>-<uuid4>`.

The API validates path ids with the same pattern Letta uses, so a malformed
id is a 422 naming an example, and a well-formed unknown one is a 404.
"""

from __future__ import annotations

import re
import uuid
from typing import Final

UUID4_PATTERN: Final = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
EXAMPLE_UUID: Final = "123e4567-e89b-42d3-8456-426614174000"


def new_id(prefix: str) -> str:
    """A fresh id such as `group-<uuid4>`."""
    return f"{prefix}-{uuid.uuid4()}"


def pattern(prefix: str) -> str:
    """The anchored regex a `<prefix>-<uuid4>` id must match."""
    return f"^{prefix}-{UUID4_PATTERN}$"


def example(prefix: str) -> str:
    return f"{prefix}-{EXAMPLE_UUID}"


def is_valid(prefix: str, value: str) -> bool:
    return re.fullmatch(pattern(prefix), value) is not None
