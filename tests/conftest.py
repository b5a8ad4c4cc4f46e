"""Hypothesis profiles: "ci" (default; bounded and derandomized, so CI is deterministic)
and "dev" (many more examples). Choose with MINIVAE_HYPOTHESIS_PROFILE=dev."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("MINIVAE_HYPOTHESIS_PROFILE", "ci"))
