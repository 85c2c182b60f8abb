"""Shared pytest settings: one hypothesis profile, small and deterministic enough for CI."""
from hypothesis import HealthCheck, settings

settings.register_profile(
    "cnnbook", max_examples=30, deadline=None, derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("cnnbook")
