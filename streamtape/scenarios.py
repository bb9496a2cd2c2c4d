"""Scenario files, named fault schedules in YAML (``scenario:NAME``): see ``streamtape.faults.scenarios``.

Kept at this path for existing imports; it only re-exports, so it imports ``streamtape.faults`` and
nothing there imports it back.
"""

from __future__ import annotations

from .faults.scenarios import Scenario, read_scenario, scenario_dirs, scenario_names
from .faults.spec import load_scenario

__all__ = ["Scenario", "load_scenario", "read_scenario", "scenario_dirs", "scenario_names"]
