"""The threads of the fast paths: a batch split into one block of images per thread.

:mod:`cnnbook.scratch.fast` runs its stride-1 convolution, its batch-first im2col and its
tiling max pool through :func:`split_batch`; :func:`set_num_threads` and
:func:`get_num_threads` set and read how many threads that uses, like
``torch.set_num_threads``. This module never imports torch.

Examples
--------
>>> before = get_num_threads()
>>> set_num_threads(1)
>>> get_num_threads(), split_batch(lambda start, stop: (start, stop), 5)
(1, [(0, 5)])
>>> set_num_threads(before)
"""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

from .checks import as_int

__all__ = ["set_num_threads", "get_num_threads", "split_batch"]


# Threads: the shifted conv2d path and the tiling max_pool2d path split the batch into one
# block of images per thread; NumPy releases the GIL inside matrix products, copies and
# ufuncs, so the blocks run side by side. For conv2d BLAS is limited to one thread meanwhile
# (threadpoolctl), so the threads do not oversubscribe the cores; without threadpoolctl
# conv2d stays on one thread.
_num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_pool = {}                      # worker threads and the BLAS thread controller, made on first use


def set_num_threads(num_threads):
    """Set how many threads the vectorized stride-1 conv2d and the tiling max_pool2d
    (``kernel_size == stride``, no padding) use, like ``torch.set_num_threads``.

    The default is the number of CPU cores this process may use. Has no effect on conv2d
    without the ``threadpoolctl`` package (needed to keep BLAS on one thread per block).
    """
    global _num_threads
    _num_threads = as_int("set_num_threads", "num_threads", num_threads, 1)


def get_num_threads():
    """How many threads the vectorized stride-1 conv2d and tiling max_pool2d use (see :func:`set_num_threads`)."""
    return _num_threads


def split_batch(work, n, limit_blas=True):
    """``[work(start, stop), ...]`` over ``n`` images in contiguous blocks, one block per thread.

    With ``limit_blas`` (work that calls BLAS) BLAS runs on one thread meanwhile, and without
    threadpoolctl to do that the work stays on one thread.
    """
    blocks = max(1, min(_num_threads, n))
    if blocks > 1 and limit_blas and _pool.get("blas") is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:                                     # BLAS threads can't be limited: stay serial
            _pool["blas"] = False
        else:
            _pool["blas"] = ThreadpoolController()
    if blocks == 1 or (limit_blas and not _pool["blas"]):
        return [work(0, n)]
    if _pool.get("workers", 0) < blocks - 1 or _pool["pid"] != os.getpid():  # a forked child has no workers
        if _pool.get("threads") and _pool["pid"] == os.getpid():
            _pool["threads"].shutdown(wait=False)
        _pool.update(threads=ThreadPoolExecutor(blocks - 1), workers=blocks - 1, pid=os.getpid())
    bounds = [n * k // blocks for k in range(blocks + 1)]
    with _pool["blas"].limit(limits=1, user_api="blas") if limit_blas else contextlib.nullcontext():
        futures = [_pool["threads"].submit(work, a, b) for a, b in zip(bounds[1:-1], bounds[2:])]
        return [work(0, bounds[1])] + [f.result() for f in futures]
