"""The fleet simulator behind ``luxtel simulate``: realistic street-light readings over MQTT.

Pure core (``fleet``, ``solar``, ``dimming``, ``physics``, ``faults``, ``readings``, ``schedule``),
thin shell (``publisher``, ``runner``, ``command``). ``run_simulation`` runs one in-process.
"""

from simulator.config import ConfigError, SimulationConfig
from simulator.publisher import PublishError
from simulator.runner import Progress, SimulationSummary, build_plan, run_simulation

__all__ = [
    "ConfigError",
    "Progress",
    "PublishError",
    "SimulationConfig",
    "SimulationSummary",
    "build_plan",
    "run_simulation",
]
