"""cnnbook's NumPy conv2d and max_pool2d against PyTorch's CPU kernels: forward + backward time.

Issue 3's speed targets, for the layers of a small Fashion-MNIST CNN (batch 128, float32):
``Conv2d`` (3x3, padding 1) forward plus backward within 1.5x of torch, ``MaxPool2d(2)``
within 2x. Both sides compute every gradient (input, weight, bias). Contenders are timed
in rotating blocks of back-to-back calls and the medians are compared (see
:func:`block_medians`), so all see the same machine load. torch runs with its default
threads. cnnbook runs twice: as it comes (its convolutions and its tiling max pool split
the batch over ``cnnbook.scratch.functional.get_num_threads()`` threads, with BLAS on one thread
each), and on one thread (``set_num_threads(1)`` and BLAS limited to one thread with
threadpoolctl). "met" judges cnnbook as it comes.

The process runs with glibc's malloc keeping freed memory (``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` set high; the script restarts itself with them): by default a
large buffer freed by one call can go back to the system and the next call pays a page
fault for every 4 KiB of fresh memory, and whether it does depends on what the process
allocated before. That measured up to 3.5 times torch's own time for the same layer, so
ratios changed with the order of the rows. ``--malloc default`` measures without it.

    .venv/bin/python benchmarks/bench_numerics.py [--rounds 4] [--malloc steady|default]

Prints a Markdown table (pasted into benchmarks/README.md) and the conditions of the run.

``--cpu`` measures cnnbook alone instead: the CPU time (``time.process_time``) of one forward
+ backward on one thread, the median of ``--calls`` calls per layer. CPU time is far less
disturbed than wall time by other programs on the machine, so two checkouts compare fairly
when run in alternation (``PYTHONPATH=old ... --cpu``, ``PYTHONPATH=new ... --cpu``, again).
"""
import argparse
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as TF

from cnnbook.scratch import functional as F, nn

BATCH = 128
CONVS = [(28, 1, 32), (28, 32, 32), (14, 32, 64), (14, 64, 64)]   # (H = W, C_in, C_out)
POOLS = [(28, 32), (14, 64)]                                       # (H = W, C)
CONV_TARGET, POOL_TARGET = 1.5, 2.0


def conv_pair(size, c_in, c_out, rng):
    """Two callables doing one forward + backward: cnnbook's Conv2d layer and torch's conv2d."""
    layer = nn.Conv2d(c_in, c_out, 3, padding=1, generator=rng)
    x = rng.standard_normal((BATCH, c_in, size, size), dtype=np.float32)
    grad = rng.standard_normal((BATCH, c_out, size, size), dtype=np.float32)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, layer.weight.data, layer.bias.data))
    tgrad = torch.from_numpy(grad)

    def ours():
        layer(x)
        layer.backward(grad)
        layer.zero_grad()

    def theirs():
        TF.conv2d(tx, tw, tb, padding=1).backward(tgrad)
        tx.grad = tw.grad = tb.grad = None

    return ours, theirs


def pool_pair(size, channels, rng):
    layer = nn.MaxPool2d(2)
    x = rng.standard_normal((BATCH, channels, size, size), dtype=np.float32)
    grad = rng.standard_normal((BATCH, channels, size // 2, size // 2), dtype=np.float32)
    tx, tgrad = torch.tensor(x, requires_grad=True), torch.from_numpy(grad)

    def ours():
        layer(x)
        layer.backward(grad)

    def theirs():
        TF.max_pool2d(tx, 2).backward(tgrad)
        tx.grad = None

    return ours, theirs


def one_thread(fn):
    """``fn`` run by cnnbook on one thread: no batch split, BLAS on one thread (None without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None

    def limited():
        threads = F.get_num_threads()
        F.set_num_threads(1)
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                fn()
        finally:
            F.set_num_threads(threads)
    return limited


def block_medians(contenders, rounds, per_block=5, settle=0.25):
    """Median seconds per call of each callable, timed in blocks of back-to-back calls.

    Each round runs every contender once, in rotated order, as one block: calls are first
    repeated for ``settle`` seconds untimed (at least two), then ``per_block`` calls are timed
    one by one. Settling matters on a 2-core machine: after a multi-threaded call, OpenBLAS's
    idle worker threads keep spinning on the cores for about 0.1 s, and torch's OpenMP threads
    for a shorter while, so the first calls of the *other* library would pay for them. Timed
    calls run back to back, as in training (after a pause, a thread pool's second core starts
    cold and a call can take twice as long).
    """
    times = [[] for _ in contenders]
    for r in range(rounds):
        for k in range(len(contenders)):
            i = (k + r) % len(contenders)
            start, calls = time.perf_counter(), 0
            while calls < 2 or time.perf_counter() - start < settle:
                contenders[i]()
                calls += 1
            for _ in range(per_block):
                start = time.perf_counter()
                contenders[i]()
                times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def cpu_milliseconds(fn, calls):
    """Median CPU milliseconds of ``fn()`` over ``calls`` calls, after two untimed ones."""
    fn(), fn()
    times = []
    for _ in range(calls):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return float(np.median(times)) * 1e3


def conditions():
    """One line about the machine, the libraries and the load."""
    try:
        from threadpoolctl import threadpool_info
        blas = [f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info()
                if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    except ImportError:
        blas = ["BLAS threads unknown (threadpoolctl missing)"]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    return (f"{cpu}, {os.cpu_count()} cores; NumPy {np.__version__} ({', '.join(blas)}), torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), cnnbook conv2d/max_pool2d {F.get_num_threads()} threads; "
            f"load average {os.getloadavg()[0]:.1f}")


def cpu_table(rows, calls):
    """Print cnnbook's CPU milliseconds per forward + backward on one thread, one row per layer."""
    print(f"| forward + backward, batch 128, float32 | cnnbook CPU time, 1 thread (ms, median of {calls}) |")
    print("|---|---:|")
    for label, (ours, _), _ in rows:
        print(f"| {label} | {cpu_milliseconds(one_thread(ours) or ours, calls):.1f} |", flush=True)
    print(f"\nafter: {conditions()}")


STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(2 ** 32), "MALLOC_TRIM_THRESHOLD_": str(2 ** 32)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="blocks of 5 timed calls per contender")
    parser.add_argument("--malloc", choices=["steady", "default"], default="steady",
                        help="steady: restart with glibc malloc keeping freed memory (the default)")
    parser.add_argument("--cpu", action="store_true", help="CPU time of cnnbook alone, one thread")
    parser.add_argument("--calls", type=int, default=7, help="timed calls per layer with --cpu")
    args = parser.parse_args(argv)
    if args.malloc == "steady" and any(os.environ.get(k) != v for k, v in STEADY_MALLOC.items()):
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]],
                  {**os.environ, **STEADY_MALLOC})
    rng = np.random.default_rng(0)
    malloc = " ".join(f"{k}={os.environ[k]}" for k in STEADY_MALLOC if k in os.environ) or "glibc defaults"
    print(f"before: {conditions()}\nmalloc: {malloc}\n")
    rows = [(f"Conv2d {c_in}->{c_out}, {size}x{size}, 3x3, padding 1", conv_pair(size, c_in, c_out, rng), CONV_TARGET)
            for size, c_in, c_out in CONVS]
    rows += [(f"MaxPool2d(2), {c} channels, {size}x{size}", pool_pair(size, c, rng), POOL_TARGET) for size, c in POOLS]
    if args.cpu:
        return cpu_table(rows, args.calls)
    print("| forward + backward, batch 128, float32 | torch (ms) | cnnbook, default threads (ms) | ratio "
          "| cnnbook, 1 thread (ms) | ratio | target | met |")
    print("|---|---:|---:|---:|---:|---:|---:|:---:|")
    for label, (ours, theirs), target in rows:
        single = one_thread(ours)
        times = block_medians([theirs, ours] + ([single] if single else []), args.rounds)
        ratios = [t / times[0] for t in times[1:]]
        cells = [f"{t * 1e3:.1f} | {r:.2f}x" for t, r in zip(times[1:], ratios)] + ["–  | –"] * (2 - len(ratios))
        print(f"| {label} | {times[0] * 1e3:.1f} | {' | '.join(cells)} | {target}x | "
              f"{'yes' if ratios[0] <= target else 'no'} |", flush=True)   # as cnnbook comes
    print(f"\nafter: {conditions()}")


if __name__ == "__main__":
    main()
