"""Fixtures shared by the simulators' own tests."""
import pytest


@pytest.fixture
def zenduty_per_minute_limits_only(db):
    """The simulated Zenduty without its per-second limits, its per-minute ones kept.

    The simulator enforces both by default, as the real Zenduty does. Tests
    that call its API directly, several calls within a second, to check
    shapes and behaviour (not the limits) ask for this; the per-second limits
    have tests of their own.
    """
    from sandbox.zenduty.models import SimulatorSettings

    switches = SimulatorSettings.load()
    switches.rate_limits, switches.per_second_limits = True, False
    switches.save()
    return switches
