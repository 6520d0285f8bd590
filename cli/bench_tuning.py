"""Benchmark: one search with 1 worker and with N workers, wall time of each, the same trials; or
what transfer learning costs next to a model trained from scratch (``--transfer``).

Usage::

    python -m tuning.bench [--space cnn] [--workers 2] [search flags ...]
    python -m tuning.bench --transfer [--folds 5] [--trials 30] [--data-dir DIR --window-seconds 2 ...]

Runs ``python -m tuning.search --space SPACE --workers 1`` and ``--workers N`` (each into a fresh
temporary folder, the same data and seeds) and prints the wall time of each, the speed-up, and
the training windows per second of each run (all trials' epochs over the wall time; per
worker, that is per GPU with ``--gpus-per-worker 1``).
Then it checks that the N workers gave every trial the validation track accuracy of a
one-process search run with the same CPU threads per process as each worker had: on CPUs,
TensorFlow's sums depend on how many threads share them, so over many epochs another thread
count can change a trial's numbers; with the same threads the engine must not. Other flags go
to every search (``--data-dir``, ``--epochs``, ``--max-trials``, ``--precision``, ...).

``--transfer`` times, side by side in one run: a ``tuning.crossval`` of ``bncnn-32-64-128-256``,
one of each probe (``--probes``: musicnn's and the recommended model by default) on a cold feature
cache (its features computed) and again on the warm cache, a ``--trials``-trial random ``--space
probe`` search, and the same search with ``--objective kfold`` over ``--folds`` folds; it prints the
wall seconds per fold of each, each probe's ratio to ``bncnn``, the searches' trials per minute and
their ratios to one ``bncnn`` fold and to each other. Every run uses the ``adamw-cosine`` recipe and
the data flags given, in a temporary folder and cache (the pretrained weights are taken from the
usual cache).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cli import flags
from cli.runner import parser, run
from data.caching import PARTS, cache_dir
from data.errors import InputError, RunFailed, UsageError
from data.processes import resident_memory_mb
from training.config import OBJECTIVE, RECOMMENDED_MODEL
from training.runstore import RunStore
from tuning.distributed import devices

PROG = "python -m tuning.bench"


def timed_search(space: str, workers: int | None, out: Path, extra: list[str],
                 env: dict[str, str] | None = None) -> tuple[float, dict[str, str], int]:
    """One search (``workers`` None: one process): its wall seconds, its trials' validation track
    accuracy (from summary.csv) and the training windows all its trials went through."""
    scale = ["--workers", str(workers)] if workers else []
    seconds = timed("tuning.search", ["--space", space, *scale, "--out", str(out), *extra], env or {})
    store = RunStore(out / space)
    windows = sum(record.get("epochs_run", 0) * store.read_config(record["trial"])["data"]["sizes"]["train"]
                  for record in store.records())
    return seconds, {row["trial"]: row[OBJECTIVE] for row in store.read_summary()}, windows


def timed(module: str, argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of ``python -m module argv`` (with ``env`` added to the environment).

    Raises:
        InputError or RunFailed: with the command's own one-line error, if it failed.
    """
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", module, "--wandb", "disabled", *argv], capture_output=True,
                            text=True, env={**os.environ, **env})
    if result.returncode != 0:
        # The command's own one-line error; a bad flag or folder stays an exit-2 error.
        last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"{module} failed"
        raise (InputError if result.returncode == 2 else RunFailed)(last.split(": error: ", 1)[-1])
    return time.perf_counter() - start


def transfer_bench(args: argparse.Namespace) -> int:
    """``--transfer``: a from-scratch fold, probe folds on a cold and a warm cache, a probe search."""
    if args.folds < 2 or args.trials < 1:
        raise UsageError(f"--folds must be at least 2 and --trials at least 1, got {args.folds}, {args.trials}")
    with tempfile.TemporaryDirectory(prefix="gtzan-bench-") as folder:
        cache = Path(folder) / "cache"
        cache.mkdir()
        for part in ("wheels", "checkpoints"):  # the features start cold; the weights are not fetched again
            if (cache_dir() / PARTS[part]).is_dir():
                (cache / PARTS[part]).symlink_to(cache_dir() / PARTS[part])
        env = {"GTZAN_CACHE": str(cache)}
        folds = ["--folds", str(args.folds), "--recipe", "adamw-cosine", *args.extra]
        scratch = timed("tuning.crossval", ["bncnn-32-64-128-256", *folds, "--out", f"{folder}/scratch"], env)
        probes = {}
        for index, model in enumerate(args.probes):
            probe = [model, *folds, "--out", f"{folder}/probe{index}"]
            probes[model] = (timed("tuning.crossval", probe, env), timed("tuning.crossval", [*probe, "--fresh"], env))
        probe_search = ["--space", "probe", "--tuner", "random", "--max-trials", str(args.trials), *args.extra]
        searched = timed("tuning.search", [*probe_search, "--out", f"{folder}/search"], env)
        kfold = timed("tuning.search", [*probe_search, "--objective", "kfold", "--folds", str(args.folds),
                                        "--out", f"{folder}/kfold"], env)
    fold = scratch / args.folds
    print(f"seconds per fold ({args.folds} folds, wall): bncnn-32-64-128-256 {fold:.1f}; " + "; ".join(
        f"{model} cold cache {cold / args.folds:.1f} ({cold / args.folds / fold:.2f}x), warm cache "
        f"{warm / args.folds:.1f} ({warm / args.folds / fold:.2f}x)" for model, (cold, warm) in probes.items()))
    print(f"probe search, {args.trials} random trials: {searched:.0f} s ({60 * args.trials / searched:.1f} trials/min), "
          f"{searched / fold:.2f}x one bncnn fold")
    print(f"the same search with --objective kfold ({args.folds} folds, and the refit): {kfold:.0f} s, "
          f"{kfold / searched:.2f}x the single-split search, {kfold / fold:.1f} bncnn folds")
    return 0


def sampled(module: str, argv: list[str], period: float = 0.2) -> list[float]:
    """Runs ``python -m module argv`` and samples its resident memory every ``period`` seconds (MB).

    Raises:
        InputError or RunFailed: with the command's own one-line error, if it failed.
    """
    # stderr goes to a file, not a pipe: a pipe nobody reads until the end would stall a chatty run.
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen([sys.executable, "-m", module, "--wandb", "disabled", *argv],
                                   stdout=subprocess.DEVNULL, stderr=errors, text=True)
        samples = []
        while process.poll() is None:
            samples.append(resident_memory_mb(process.pid) or 0.0)
            time.sleep(period)
        errors.seek(0)
        stderr = errors.read()
    if process.returncode != 0:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"{module} failed"
        raise (InputError if process.returncode == 2 else RunFailed)(last.split(": error: ", 1)[-1])
    return samples


def memory_bench(args: argparse.Namespace) -> int:
    """``--memory``: one long random search, its resident memory sampled as it runs and recorded after
    each trial; then its largest trial (by memory after it) trained alone, sampled the same way, which
    is what one training of the search's biggest model needs."""
    if args.trials < 1:
        raise UsageError(f"--trials must be at least 1, got {args.trials}")
    with tempfile.TemporaryDirectory(prefix="gtzan-bench-") as folder:
        data = []
        if "--data-dir" not in args.extra:  # 100 synthetic clips of 10 s
            data = ["--data-dir", f"{folder}/data"]
            subprocess.run([sys.executable, "-m", "data.synthetic", f"{folder}/data", "--clips-per-genre", "10",
                            "--seconds", "10", "--seed", "0"], check=True, capture_output=True)
        argv = ["--space", args.space, "--tuner", "random", "--max-trials", str(args.trials), *data, *args.extra,
                "--out", f"{folder}/runs"]
        samples = sampled("tuning.search", argv)
        records = sorted(RunStore(Path(folder) / "runs" / args.space).records(), key=lambda r: r.get("trial_id", ""))
        largest = max(records, key=lambda record: record["rss_mb"])
        alone = sampled("tuning.train", [largest["model"], *data, *args.extra, "--out", f"{folder}/alone"])
    after = [record["rss_mb"] for record in records]
    peak = max(samples)
    print(f"{args.space} search, {len(records)} random trials ({' '.join(args.extra) or 'default flags'}), "
          f"resident memory (MB) after each trial: {', '.join(f'{mb:.0f}' for mb in after)}")
    print(f"peak {peak:.0f} MB; after the last trial {after[-1]:.0f} MB, {after[-1] / after[0]:.2f}x after the first; "
          f"the peak is {peak / after[0]:.2f}x the memory after the first trial")
    print(f"its largest trial, {largest['model']} ({largest['parameters']:,} parameters), trained alone peaks at "
          f"{max(alone):.0f} MB: the search's peak is {peak / max(alone):.2f}x one training of its largest model")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (other flags go to every search)."""
    result = parser(PROG, __doc__)
    result.add_argument("--space", default="cnn", help="search space (default: cnn)")
    result.add_argument("--workers", type=int, default=2, help="workers of the parallel run (default: 2)")
    transfer = result.add_argument_group("transfer learning (--transfer)")
    transfer.add_argument("--transfer", action="store_true",
                          help="time a bncnn fold, probe folds on a cold and a warm feature cache, and a probe search")
    transfer.add_argument("--folds", type=int, default=5, help="folds of each cross-validation (default: 5)")
    transfer.add_argument("--trials", type=int, default=30, help="trials of the probe search (default: 30)")
    memory = result.add_argument_group("search memory (--memory)")
    memory.add_argument("--memory", action="store_true",
                        help="one long random search (--trials trials; 100 synthetic clips of 10 s without "
                             "--data-dir), its resident memory after each trial and at its peak")
    transfer.add_argument("--probes", nargs="+", default=list(dict.fromkeys(("musicnn-msd_train=head",
                                                                              RECOMMENDED_MODEL[0]))),
                          metavar="MODEL", help="the probes to time (default: musicnn-msd_train=head and the "
                                                "recommended model)")
    own = set(flags.flag_names(result))
    passed = [name for name in flags.flag_names(flags.data_flags(), flags.training_flags(), flags.objective_flags(),
                                                flags.scale_flags(roles=False)) if name not in own]
    result.epilog = (f"Any other flag is passed on to every run it times: {', '.join(passed)}, and tuning.search's "
                     "--tuner, --max-trials, --base (python -m tuning.search --help says what each does).")
    return result


def bench(args: argparse.Namespace) -> int:
    """The command: the three searches, their timings and whether the trials agree (or ``--transfer``)."""
    if args.transfer and args.memory:
        raise UsageError("--transfer and --memory are two benchmarks; give one")
    if args.transfer:
        return transfer_bench(args)
    if args.memory:
        return memory_bench(args)
    if args.workers < 2:
        raise UsageError(f"--workers must be at least 2 to compare with one worker, got {args.workers}")
    extra = args.extra
    with tempfile.TemporaryDirectory(prefix="gtzan-bench-") as folder:
        one, _, windows_one = timed_search(args.space, 1, Path(folder) / "one", extra)
        many, trials_many, windows_many = timed_search(args.space, args.workers, Path(folder) / "many", extra)
        threads = devices(args.workers, 1)[0]
        _, reference, _ = timed_search(args.space, None, Path(folder) / "reference", extra,
                                       {k: v for k, v in threads.items() if k != "CUDA_VISIBLE_DEVICES"})
    same = reference == trials_many
    print(f"{args.space} search, {len(trials_many)} trials: 1 worker {one:.0f} s ({windows_one / one:.0f} training "
          f"windows/s), {args.workers} workers {many:.0f} s ({windows_many / many:.0f} windows/s, "
          f"{windows_many / many / args.workers:.0f} per worker; {one / many:.2f}x)")
    print(f"per-trial validation track accuracy of {args.workers} workers vs one process with the same threads "
          f"({threads.get('TF_NUM_INTRAOP_THREADS', 'all')}): {'identical' if same else 'DIFFERENT'}")
    if not same:
        for name in sorted(set(reference) | set(trials_many)):
            print(f"  {name}: {reference.get(name)} vs {trials_many.get(name)}")
    return 0 if same else 1


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, bench, argv, pass_through=True)


if __name__ == "__main__":
    sys.exit(main())
