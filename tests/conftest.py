"""Shared pytest settings: one hypothesis profile, small and deterministic enough for CI."""
import re

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "cnnbook", max_examples=30, deadline=None, derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("cnnbook")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one thread is faster, and steady when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def assert_refused(call, value, fn, arg):
    """``call(value)`` raises TypeError/ValueError whose message starts with ``fn`` and names ``arg``."""
    with pytest.raises((TypeError, ValueError)) as error:
        call(value)
    message = str(error.value)
    assert message.startswith(fn) and re.search(rf"\b{re.escape(arg)}\b", message), message
