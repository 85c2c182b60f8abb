"""Run every benchmark of the book, one after the other (``make bench``).

    .venv/bin/python benchmarks/run_all.py

Runs ``bench_numerics.py`` (cnnbook's NumPy layers against torch) and
``train_scratch_lenet.py`` (a LeNet trained with cnnbook alone) when they are present, then
``bench_classifier.py`` (chapter 5's configurations; results in ``benchmarks/results/``).
Each runs in its own process with this interpreter, so one's threads and memory do not
disturb the next. Exits non-zero if any benchmark failed.
"""
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["bench_numerics.py", "train_scratch_lenet.py", "bench_classifier.py"]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        script = HERE / name
        if not script.is_file():
            print(f"== {name}: not present, skipped", flush=True)
            continue
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        code = subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode
        print(f"== {name}: exit code {code}, {time.perf_counter() - start:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
