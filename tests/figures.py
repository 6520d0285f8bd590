"""Measured figures, ``docs/figures.md``: each README timing and benchmark rerun by its own command.

    python -m tests.figures                          # every figure (about an hour on 2 CPU cores)
    python -m tests.figures --only data-bench zoo-bench
    python -m tests.figures --list

Each figure runs its command as a user would (from the project folder, commands writing into a
temporary folder), and ``docs/figures.md`` keeps, per figure: the command, the machine it ran on
(CPU, cores, memory, GPU, Python, TensorFlow), the date, the wall time and what the command
printed. A figure rerun replaces its own section only, so figures measured on another machine
keep saying which machine that was.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures.md"
REAL = ROOT.parent / "shared" / "real_excerpts"
HEADER = """# Measured figures

Every timing and benchmark figure of README and the docs, as its command printed it, with the
machine it ran on and when; the pages link here (`figures.md#NAME`) instead of repeating a figure.
`python -m tests.figures` reruns them all (`--only NAME ...` some, `--list` names them); a figure
rerun replaces its own section only.
"""


@dataclass(frozen=True)
class Figure:
    """One measured figure: what README says it shows, and the command that measures it.

    ``{tmp}`` in a command is a fresh temporary folder; ``setup`` runs first, untimed (a model to
    export, for the serving benchmarks); ``fresh_cache`` runs the command with an empty
    ``$GTZAN_CACHE`` (so the synthetic set is generated, as on a fresh machine).
    """

    name: str
    title: str
    command: str
    setup: tuple[str, ...] = ()
    fresh_cache: bool = False
    needs_real_music: bool = False


# The serving benchmarks time an export of bncnn-32-64-128-256 (one epoch on the synthetic set:
# its speed does not depend on what it learned).
TRAINED = "python -m tuning.train bncnn-32-64-128-256 --epochs 1 --out {tmp}/runs --wandb disabled"
EXPORTED = (TRAINED, "python -m zoo.evaluate {tmp}/runs/train/trials/bncnn-32-64-128-256 --exports {tmp}/exports")
EXPORTED_ALL_FORMATS = (TRAINED, EXPORTED[1] + " --formats savedmodel,onnx,litert,openvino")
EXPORT = "{tmp}/exports/bncnn-32-64-128-256/1"
# The recommended model, the same way (one epoch on its cached features; its weights are fetched if missing).
RECOMMENDED = "musicnn-msd+efficientat-mn04_train=head"
RECOMMENDED_ALL_FORMATS = (f"python -m tuning.train {RECOMMENDED} --epochs 1 --out {{tmp}}/runs --wandb disabled",
                           f"python -m zoo.evaluate {{tmp}}/runs/train/trials/{RECOMMENDED} --exports {{tmp}}/exports "
                           "--formats savedmodel,onnx,litert,openvino")
RECOMMENDED_EXPORT = f"{{tmp}}/exports/{RECOMMENDED}/1"

FIGURES_LIST = (
    Figure("quick-start-install", "README's first install command in a new virtual environment, public index only",
           "python -m tests.install_size"),
    Figure("quick-start-search", "README's first command on a fresh machine (synthetic set generated first)",
           "python -m tuning.search --space cnn --out {tmp}/runs", fresh_cache=True),
    Figure("fast-tests", "README's second command: the fast tests", "python -m pytest"),
    Figure("data-bench", "decoding and log-mel against librosa", "python -m data.bench"),
    Figure("data-bench-disk", "the disk cache of decoded audio against the memory cache",
           "python -m data.bench --cache disk"),
    Figure("zoo-bench", "training rate against the matmul rate", "python -m zoo.bench"),
    Figure("zoo-bench-backends", "the Keras backends side by side",
           "python -m zoo.bench --models bncnn-32-64-128-256 --backends tensorflow jax torch --blocks"),
    Figure("serving-bench", "an exported model: load time, latency, throughput, memory",
           f"python -m serving.bench --model {EXPORT}", setup=EXPORTED),
    Figure("serving-bench-compare", "every format of one export side by side",
           f"python -m serving.bench --compare {EXPORT}", setup=EXPORTED_ALL_FORMATS),
    Figure("serving-bench-compare-recommended", "every format of the recommended model's export side by side",
           f"python -m serving.bench --compare {RECOMMENDED_EXPORT}", setup=RECOMMENDED_ALL_FORMATS),
    Figure("serving-bench-hostile", "hostile clients against the web app in its default limits",
           f"python -m serving.bench --hostile --model {EXPORT}", setup=EXPORTED),
    Figure("serving-bench-http", "the web app on loopback", f"python -m serving.bench --http --model {EXPORT}",
           setup=EXPORTED),
    Figure("serving-soak", "the web app driven for 10 minutes by good and hostile clients",
           f"python -m serving.bench --soak --minutes 10 --model {EXPORT}", setup=EXPORTED),
    Figure("serving-bench-library", "tagging a library with --out against one file after another",
           f"python -m serving.bench --library --model {EXPORT}", setup=EXPORTED_ALL_FORMATS),
    Figure("serving-bench-library-recommended", "tagging a library with the recommended model",
           f"python -m serving.bench --library --model {RECOMMENDED_EXPORT}", setup=RECOMMENDED_ALL_FORMATS),
    Figure("tuning-bench-memory", "a long random search's resident memory, trial by trial",
           "python -m tuning.bench --memory --trials 24 --epochs 2"),
    Figure("transfer-bench", "probe folds and searches against a bncnn fold, on the real excerpts",
           f"python -m tuning.bench --transfer --data-dir {REAL} --window-seconds 2", needs_real_music=True),
)


def machine() -> str:
    """One line naming the machine: CPU, cores, memory, GPU, Python and TensorFlow."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and (model := re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())):
        cpu = model[1].strip()
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file() and (total := re.search(r"MemTotal:\s*(\d+) kB", meminfo.read_text())):
        memory = f", {int(total[1]) / 2 ** 20:.0f} GiB"
    gpu = "no GPU"
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip().splitlines()
        gpu = "; ".join(line.split(" (UUID")[0] for line in listed) or gpu
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("tensorflow", "keras"))
    return (f"{cpu}, {os.cpu_count()} cores{memory}, {gpu}; {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, {versions}")


def _run(command: str, tmp: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    words = shlex.split(command.format(tmp=tmp))
    return subprocess.run([sys.executable if word == "python" else word for word in words], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def measure(figure: Figure) -> str:
    """Runs ``figure``'s setup, then its command, timed; returns its section of ``docs/figures.md``."""
    with tempfile.TemporaryDirectory(prefix="gtzan-figure-") as tmp:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if figure.fresh_cache:
            env["GTZAN_CACHE"] = str(Path(tmp) / "cache")
        for step in figure.setup:
            if (done := _run(step, tmp, env)).returncode != 0:
                raise SystemExit(f"{figure.name}: its setup failed: {step}\n{done.stderr[-2000:]}")
        start = time.perf_counter()
        result = _run(figure.command, tmp, env)
        seconds = time.perf_counter() - start
    shown = figure.command.replace("{tmp}", "/tmp/x").replace(str(ROOT.parent), "..")
    shown = "; ".join([*(step.replace("{tmp}", "/tmp/x") for step in figure.setup), shown])
    output = (result.stdout + result.stderr).replace(tmp, "/tmp/x").replace(str(ROOT.parent), "..")
    output = output.replace(str(Path.home()), "~").rstrip().splitlines()
    status = "" if result.returncode == 0 else f", **exit status {result.returncode}**"
    return "\n".join([
        f"<!-- figure: {figure.name} -->", f'<a id="{figure.name}"></a>', "", f"## {figure.name}: {figure.title}", "",
        f"`{shown}`", "",
        f"Measured {datetime.date.today().isoformat()}: {seconds:.0f} s wall ({seconds / 60:.1f} min){status}.",
        f"Machine: {machine()}.", "",
        "```text", *output[-40:], "```", ""])


def sections(text: str) -> dict[str, str]:
    """The figures' sections of ``docs/figures.md``, by name, in their order."""
    parts = re.split(r"(?=^<!-- figure: )", text, flags=re.M)
    return {re.match(r"<!-- figure: (\S+) -->", part)[1]: part.rstrip() + "\n" for part in parts
            if part.startswith("<!-- figure: ")}


def main(argv: list[str] | None = None) -> int:
    """Reruns the figures asked for and rewrites their sections; returns the exit code."""
    names = [figure.name for figure in FIGURES_LIST]
    parser = argparse.ArgumentParser(prog="python -m tests.figures", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME", help=f"these figures only: {', '.join(names)}")
    parser.add_argument("--list", action="store_true", help="list the figures and their commands")
    args = parser.parse_args(argv)
    if args.list:
        for figure in FIGURES_LIST:
            print(f"{figure.name:<20} {figure.command}")
        return 0
    kept = sections(FIGURES.read_text()) if FIGURES.is_file() else {}
    failed = 0
    for figure in FIGURES_LIST:
        if args.only and figure.name not in args.only:
            continue
        if figure.needs_real_music and not any(REAL.glob("*/*.wav")):
            print(f"{figure.name}: skipped, needs the real excerpts in {REAL}", file=sys.stderr)
            continue
        print(f"{figure.name}: {figure.command}", flush=True)
        kept[figure.name] = measure(figure)
        failed += "**exit status" in kept[figure.name]
        # Written after each figure, in the list's order: an interrupted run keeps what it measured.
        FIGURES.write_text(HEADER + "".join("\n" + kept[f.name] for f in FIGURES_LIST if f.name in kept))
    print(f"wrote {FIGURES}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
