"""The base of every section of `spillover.yaml`, shared by the modules that define them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictSettings(BaseModel):
    # Unknown keys are typos until proven otherwise; frozen because the policy shares it.
    model_config = ConfigDict(extra="forbid", frozen=True)
