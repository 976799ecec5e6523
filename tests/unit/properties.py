"""The settings of the unit suite's property tests: a fixed seed (derandomized) and a few
hundred examples in the default suite; SYNCER_FUZZ_EXAMPLES=100000 for a long run with fresh
random examples."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

LONG_RUN = os.environ.get("SYNCER_FUZZ_EXAMPLES")


def property_settings(*, examples: int) -> settings:
    return settings(max_examples=int(LONG_RUN or examples), derandomize=not LONG_RUN, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
