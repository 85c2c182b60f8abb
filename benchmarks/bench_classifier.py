"""Chapter 5's classifier configurations: test accuracy and training time over several seeds.

The targets, all ten classes, the full 10,000-image test set, trained from scratch, accuracy of
a single view (no test-time augmentation): ``cpu`` at least 92.5% within 180 s of training on a
2-core CPU; ``gpu`` at least 95.0% within 30 s on a CUDA GPU. Each configuration is trained by
:func:`cnnbook.pytorch.classifier.train_classifier` (the call the chapter makes), once per seed,
and scored by :func:`~cnnbook.pytorch.classifier.score_classifier` on the validation and the test
split, single-view and with test-time augmentation (TTA); ``train_seconds`` is the wall-clock
time of the training loop (epochs and their validation passes, not the data loading or the
scoring), ``train_cpu_seconds`` the CPU time of this process meanwhile (all threads).

    .venv/bin/python benchmarks/bench_classifier.py [--configs cpu gpu] [--seeds 0 1 2]
    .venv/bin/python benchmarks/bench_classifier.py --ablation [--seeds 0 1]

``--ablation`` trains the rows of chapter 5's improvement table
(:func:`~cnnbook.pytorch.classifier.ablation_steps` of the ``cpu`` configuration) at full length
and writes ``classifier-ablation.json`` with their validation accuracies: the chapter compares
its short proxy runs with these to show whether the proxy ranks the rows like the full runs.

The ``cpu`` configuration always runs on the CPU; the ``gpu`` one runs where CUDA is present
and is skipped, with a message, elsewhere (its earlier record, if any, is kept). Each
configuration writes ``benchmarks/results/classifier-<name>.json``: per-seed and mean/std of
accuracy and time, the seeds, the hardware, the library versions and the machine's load
average before and after each run (the time of a run on a shared machine depends on it).
``--epochs N`` makes a quick smoke run that writes nothing unless ``--out`` is given.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from cnnbook.pytorch import classifier as C

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU features that decide whether bfloat16 is fast here (Linux only)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((l.split(":", 1)[1].split() for l in text.splitlines() if l.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))


def hardware(device: torch.device) -> dict:
    info = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_flags": cpu_flags(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "platform": platform.platform(), "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return info


def versions() -> dict:
    import numpy
    import torchvision

    import cnnbook

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__,
            "cnnbook": cnnbook.__version__, "git_commit": commit}


def summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "per_seed": values}


def one_run(config: C.ClassifierConfig, seed: int, data: C.FashionData, test: bool = True) -> dict:
    """Train ``config`` with ``seed``; its accuracies (single view and TTA) and times."""
    load_before = os.getloadavg()
    cpu_before = time.process_time()
    run = C.train_classifier(config, seed=seed, data=data, progress=False)
    cpu_seconds = time.process_time() - cpu_before
    load_after = os.getloadavg()
    val = C.score_classifier(run.model, data.x_val, data.y_val, config, data.fill)
    record = {"seed": seed, "val_accuracy": val.accuracy, "val_accuracy_tta": val.accuracy_tta}
    if test:
        scores = C.score_classifier(run.model, data.x_test, data.y_test, config, data.fill)
        record.update(test_accuracy=scores.accuracy, test_accuracy_tta=scores.accuracy_tta)
    record.update({"train_seconds": run.train_seconds, "train_cpu_seconds": cpu_seconds,
                   "best_epoch": run.best_epoch, "epoch_seconds": run.history["time"],
                   "val_accuracy_per_epoch": run.history["val_accuracy"],
                   "load_average_1min_before_after": [load_before[0], load_after[0]]})
    shown = "test" if test else "val"
    print(f"  {config.name} seed {seed}: {shown} accuracy {record[f'{shown}_accuracy']:.4f} single view, "
          f"{record[f'{shown}_accuracy_tta']:.4f} TTA; training {run.train_seconds:.1f} s "
          f"(CPU {cpu_seconds:.0f} s; load {load_before[0]:.1f} -> {load_after[0]:.1f})", flush=True)
    return record


def bench_config(config: C.ClassifierConfig, seeds: list[int], data: C.FashionData) -> dict:
    """Train ``config`` once per seed; return the record written to the JSON file."""
    device = torch.device(config.device)
    runs = [one_run(config, seed, data) for seed in seeds]
    acc = summary([r["test_accuracy"] for r in runs])
    sec = summary([r["train_seconds"] for r in runs])
    return {
        "benchmark": "classifier", "config": dataclasses.asdict(config), "seeds": seeds,
        "test_accuracy": acc, "test_accuracy_tta": summary([r["test_accuracy_tta"] for r in runs]),
        "val_accuracy": summary([r["val_accuracy"] for r in runs]),
        "val_accuracy_tta": summary([r["val_accuracy_tta"] for r in runs]),
        "train_seconds": sec, "train_cpu_seconds": summary([r["train_cpu_seconds"] for r in runs]),
        "target": {"test_accuracy_single_view": config.target_accuracy,
                   "train_seconds": config.budget_seconds},
        "met_target_every_seed": all(r["test_accuracy"] >= config.target_accuracy
                                     and r["train_seconds"] <= config.budget_seconds for r in runs),
        "runs": runs, **provenance(device),
    }


def provenance(device: torch.device) -> dict:
    return {"hardware": hardware(device), "versions": versions(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}


def bench_ablation(config: C.ClassifierConfig, seeds: list[int], data: C.FashionData) -> dict:
    """Train every row of :func:`~cnnbook.pytorch.classifier.ablation_steps` at full length."""
    rows = {}
    for name, step in C.ablation_steps(config).items():
        runs = [one_run(step, seed, data, test=False) for seed in seeds]
        rows[name] = {"config": dataclasses.asdict(step), "runs": runs,
                      "val_accuracy": summary([r["val_accuracy"] for r in runs]),
                      "train_seconds": summary([r["train_seconds"] for r in runs])}
    return {"benchmark": "classifier-ablation", "base_config": config.name, "seeds": seeds,
            "epochs": config.epochs, "train_images": len(data.x_train), "rows": rows,
            **provenance(torch.device(config.device))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(C.CONFIGS), choices=list(C.CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override (smoke test)")
    parser.add_argument("--out", type=Path, default=None, help=f"results folder (default {RESULTS})")
    parser.add_argument("--ablation", action="store_true",
                        help="train chapter 5's improvement-table rows at full length instead")
    args = parser.parse_args(argv)
    write = args.epochs is None or args.out is not None
    out = args.out or RESULTS
    data = None
    if args.ablation:
        config = C.CONFIGS["cpu"]
        if args.epochs is not None:
            config = dataclasses.replace(config, epochs=args.epochs)
        record = bench_ablation(config, args.seeds, C.prepare_data(config.val_size))
        for name, row in record["rows"].items():
            print(f"{name:22s} val accuracy {row['val_accuracy']['mean']:.4f} ± {row['val_accuracy']['std']:.4f}")
        if write:
            out.mkdir(parents=True, exist_ok=True)
            (out / "classifier-ablation.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            print(f"wrote {out / 'classifier-ablation.json'}")
        return 0
    for name in args.configs:
        config = C.CONFIGS[name]
        if config.device == "cuda" and not torch.cuda.is_available():
            print(f"{name}: skipped, CUDA is not available on this machine; the GPU figure is not "
                  f"measured here (an earlier record in {out / f'classifier-{name}.json'} is kept).")
            continue
        if args.epochs is not None:
            config = dataclasses.replace(config, epochs=args.epochs)
        data = data or C.prepare_data(config.val_size)
        print(f"{name}: {len(args.seeds)} seeds on {config.device} ({cpu_model()})", flush=True)
        record = bench_config(config, args.seeds, data)
        acc, sec = record["test_accuracy"], record["train_seconds"]
        tta = record["test_accuracy_tta"]
        print(f"{name}: single-view test accuracy {acc['mean']:.4f} ± {acc['std']:.4f} (min {acc['min']:.4f}), "
              f"TTA {tta['mean']:.4f} ± {tta['std']:.4f}, "
              f"training {sec['mean']:.1f} ± {sec['std']:.1f} s (max {sec['max']:.1f}); target "
              f">= {config.target_accuracy:.3f} within {config.budget_seconds:.0f} s: "
              f"{'met' if record['met_target_every_seed'] else 'NOT met'} on every seed", flush=True)
        if write:
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"classifier-{name}.json"
            path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            print(f"{name}: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
