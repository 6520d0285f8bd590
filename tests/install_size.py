"""The quick start's install, measured: time and size in a new virtual environment, public index only.

    python -m tests.install_size                    # README's first install command (the project alone)
    python -m tests.install_size --extras app       # with some extras

It creates a virtual environment in a temporary folder and runs ``pip install -e PROJECT[EXTRAS]``
there with pip's own configuration and find-links set aside (``PIP_CONFIG_FILE=/dev/null``, no
``PIP_FIND_LINKS``) and no download cache, as on a machine that knows only the public package index,
then prints the seconds, the environment's size and its largest packages. ``docs/figures.md`` keeps
its output (``python -m tests.figures --only quick-start-install``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def size_mb(path: Path) -> float:
    """Bytes under ``path`` (files counted once, links not followed), in MB."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def main(argv: list[str] | None = None) -> int:
    """Measures one install; returns pip's exit code."""
    parser = argparse.ArgumentParser(prog="python -m tests.install_size", description=__doc__.split("\n\n")[0])
    parser.add_argument("--extras", default="", help="comma-separated extras of the project (default: none)")
    args = parser.parse_args(argv)
    target = f"{ROOT}[{args.extras}]" if args.extras else str(ROOT)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    with tempfile.TemporaryDirectory(prefix="gtzan-install-") as folder:
        where = Path(folder) / "env"
        venv.create(where, with_pip=True)
        before = size_mb(where)
        start = time.perf_counter()
        result = subprocess.run([where / "bin" / "python", "-m", "pip", "install", "--quiet", "-e", target], env=env,
                                capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            print(result.stdout[-3000:] + result.stderr[-3000:], file=sys.stderr)
            return result.returncode
        site = next((where / "lib").glob("python3*/site-packages"))
        packages = sorted(((size_mb(p), p.name) for p in site.iterdir() if p.is_dir() and not p.name.endswith(
            (".dist-info", ".libs")) and p.name != "__pycache__"), reverse=True)
        listed = subprocess.run([where / "bin" / "python", "-m", "pip", "list", "--format=freeze"], env=env,
                                capture_output=True, text=True).stdout.split()
        print(f"pip install -e .{'[' + args.extras + ']' if args.extras else ''} into a new virtual environment, "
              f"public package index only, no download cache")
        pip = dict(line.split("==") for line in listed if "==" in line).get("pip", "?")
        print(f"Python {sys.version.split()[0]}, {sys.platform}, pip {pip}")
        print(f"install: {seconds:.0f} s, {len(listed)} distributions")
        print(f"environment: {size_mb(where):.0f} MB ({size_mb(where) - before:.0f} MB installed)")
        print("largest packages (MB): " + ", ".join(f"{name} {mb:.0f}" for mb, name in packages[:8]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
