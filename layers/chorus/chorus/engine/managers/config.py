"""A group's manager configuration as managers read it: typed, read once, the defaults here.

The store keeps `manager_config` as the JSON object the API validated (`ManagerConfig` in
`chorus.schemas.resources`, dumped). Runs read it once into `ManagerSettings`, one flat
model over every manager type's fields, so no manager picks keys out of a dict with a
default of its own. An unset or zero field means "the default", as it did when managers
read the dict with `or`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from chorus.schemas.resources import ManagerType

DEFAULT_TERMINATION_TOKEN = "DONE!"
"""What a dynamic group's manager says to end the run (Letta's default)."""
DEFAULT_MAX_BUFFER = 30
"""Messages a voice sleeptime group keeps before its sleeptime agents process them (Letta's default)."""
DEFAULT_MIN_BUFFER = 15
"""Messages a voice sleeptime group keeps unprocessed after they did (Letta's default)."""


class ManagerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    manager_type: ManagerType = "round_robin"
    manager_agent_id: str | None = None
    max_turns: int | None = None
    """Turns the group's agents take in a run (round robin, dynamic); None: one each."""
    termination_token: str = DEFAULT_TERMINATION_TOKEN
    sleeptime_agent_frequency: int | None = None
    """Run the sleeptime agents every N-th run of the group; None: every run."""
    max_message_buffer_length: int = DEFAULT_MAX_BUFFER
    min_message_buffer_length: int = DEFAULT_MIN_BUFFER

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> ManagerSettings:
        """The stored `manager_config`, typed; fields unset, null or zero take their defaults."""
        return cls.model_validate({key: value for key, value in config.items() if value})
