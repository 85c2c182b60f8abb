"""The timing protocol of benchmarks/bench_numerics.py (the numbers themselves are not tested)."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_numerics.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_numerics", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_block_medians_settles_each_block_then_times_back_to_back_calls(bench, monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock["now"])
    log = []

    def contender(name, seconds):
        def call():
            log.append(name)
            clock["now"] += seconds
        return call

    a, b, settle = 1 / 64, 3 / 64, 5 / 64                              # exact in binary
    medians = bench.block_medians([contender("a", a), contender("b", b)], rounds=2, per_block=3, settle=settle)
    assert medians == [a, b]
    # a block: untimed calls until `settle` seconds have passed (at least two), then 3 timed calls
    blocks = ["a"] * 5 + ["a"] * 3, ["b"] * 2 + ["b"] * 3
    assert log == blocks[0] + blocks[1] + blocks[1] + blocks[0]      # the second round starts with b


def test_steady_malloc_settings_are_the_ones_documented(bench):
    assert set(bench.STEADY_MALLOC) == {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}
    assert "MALLOC_MMAP_THRESHOLD_" in bench.__doc__ and "--malloc default" in bench.__doc__


def test_cpu_milliseconds_is_the_median_of_the_timed_calls(bench, monkeypatch):
    clock = {"now": 0.0, "calls": 0}
    monkeypatch.setattr(bench.time, "process_time", lambda: clock["now"])
    costs = iter([9.0, 9.0, 0.004, 0.001, 0.003])                  # two untimed calls, then three timed

    def call():
        clock["calls"] += 1
        clock["now"] += next(costs)
    assert bench.cpu_milliseconds(call, calls=3) == pytest.approx(3.0)
    assert clock["calls"] == 5
