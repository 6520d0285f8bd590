"""Figures and REPORT.md for a study (or any searches), from the local run histories.

``python -m tuning.report`` is the command line of :func:`write_report`. Per section: train and validation loss per epoch of every trial, validation accuracy per epoch,
and each trial's validation accuracy as bars; for ``training`` also the mean accuracy per
batch size; the test confusion matrix of the final model. ``REPORT.md`` holds a table of trials
per section and compares the best and worst with the study's published numbers. It states
which data the runs used, so synthetic numbers are never taken for GTZAN results.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

from data.errors import InputError
from training.config import OBJECTIVE
from training.runstore import RunStore, pyplot, rank, read_json, write_text
from tuning.spaces import SPACES

# The study's published validation accuracy: (best, worst) per section.
STUDY_VALIDATION = {"mlp": (0.30, 0.21), "cnn": (0.50, 0.39), "activation": (0.54, 0.43), "optimizer": (0.54, 0.37),
                    "training": (0.53, 0.48), "regularization": (0.56, 0.41)}
STUDY_INPUT = {"spectrogram": 0.56, "waveform": 0.29}
STUDY_TEST = {"weight_decay-1e-05": 0.51, "dropout0.1cnn-0.2fc": 0.52}


def load_section(folder: Path) -> list[dict]:
    """The section's records (best first), each with its per-epoch ``history``."""
    store = RunStore(folder)
    records = rank(store.records())
    for record in records:
        record["history"] = store.read_history(record["trial"])
    return records


def _style(i: int, epochs: int) -> dict:
    # Ten distinct colours, then the same colours dashed: neighbours in the legend stay apart.
    # Markers show the points of short runs, where lines alone hide how few epochs there were.
    return {"color": pyplot().get_cmap("tab10")(i % 10), "linestyle": ("-", "--", ":")[(i // 10) % 3],
            "marker": "o" if epochs <= 5 else None, "markersize": 4}


def _epoch_axis(ax) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(pyplot().MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _legend(ax, count: int) -> None:
    ax.legend(fontsize=7 if count > 8 else 8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
              ncol=1 if count <= 18 else 2)


def plot_curves(section: str, records: list[dict], out: Path) -> list[Path]:
    """Loss (train and validation) and validation accuracy per epoch, one line per trial."""
    plt = pyplot()
    paths = []
    done = [r for r in records if r["history"].get("loss")]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
    for i, record in enumerate(done):
        epochs = range(1, len(record["history"]["loss"]) + 1)
        axes[0].plot(epochs, record["history"]["loss"], label=record["trial"], **_style(i, len(epochs)))
        axes[1].plot(epochs, record["history"].get("val_loss", []), label=record["trial"], **_style(i, len(epochs)))
    for ax, title in zip(axes, ("training loss", "validation loss")):
        ax.set_title(f"{section}: {title}")
        _epoch_axis(ax)
    axes[0].set_ylabel("cross-entropy")
    _legend(axes[1], len(done))
    fig.tight_layout()
    paths.append(out / f"{section}_loss.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 5))
    for i, record in enumerate(done):
        history = record["history"]
        values = history.get(OBJECTIVE, [])
        ax.plot(range(1, len(values) + 1), values, label=record["trial"], **_style(i, len(values)))
    ax.set_title(f"{section}: validation accuracy (track level) per epoch")
    _epoch_axis(ax)
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1)
    _legend(ax, len(done))
    fig.tight_layout()
    paths.append(out / f"{section}_val_accuracy.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return paths


def plot_bars(section: str, records: list[dict], out: Path) -> Path:
    """Each trial's validation accuracy (at its kept epoch), best on top."""
    plt = pyplot()
    done = [r for r in records if r.get("status") == "completed"]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(done) + 1.5))
    names = [r["trial"] for r in done][::-1]
    values = [r[OBJECTIVE] for r in done][::-1]
    ax.barh(names, values, color="tab:blue")
    for y, value in enumerate(values):
        ax.text(value + 0.01, y, f"{value:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("validation accuracy (track level) of the kept weights")
    ax.set_title(f"{section}: validation accuracy per trial, best on top")
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    path = out / f"{section}_best_val_accuracy.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_batch_sizes(records: list[dict], configs: dict[str, dict], out: Path) -> tuple[Path, dict[int, float]]:
    """Mean validation accuracy per batch size (the training section)."""
    plt = pyplot()
    by_batch = defaultdict(list)
    for record in records:
        if record.get("status") == "completed":
            by_batch[configs[record["trial"]]["training"]["batch_size"]].append(record[OBJECTIVE])
    means = {batch: sum(v) / len(v) for batch, v in sorted(by_batch.items())}
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar([str(b) for b in means], list(means.values()), color="tab:green")
    for x, value in enumerate(means.values()):
        ax.text(x, value + 0.01, f"{value:.2f}", ha="center", fontsize=9)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("batch size")
    ax.set_ylabel("mean validation accuracy (track level)")
    ax.set_title("training: mean best validation accuracy per batch size")
    fig.tight_layout()
    path = out / "training_batch_size.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path, means


def _table(records: list[dict]) -> list[str]:
    lines = ["| trial | best val accuracy (track) | val loss | epochs | time (s) |", "| --- | ---: | ---: | ---: | ---: |"]
    # "best": at the epoch whose weights were kept (lowest validation loss with early stopping).
    for r in records:
        if r.get("status") == "completed":
            # A k-fold trial's figure is the mean over its folds, shown with their spread.
            score = f"{r[OBJECTIVE]:.3f}" + (f" +- {r[f'{OBJECTIVE}_std']:.3f} ({len(r['folds'])} folds)"
                                             if "folds" in r else "")
            lines.append(f"| `{r['trial']}` | {score} | {r['val_loss']:.3f} | {r['epochs_run']} | {r['seconds']:.1f} |")
        else:
            lines.append(f"| `{r['trial']}` | failed: {r.get('error', '')} | | {r.get('epochs_run', 0)} | {r.get('seconds', 0):.1f} |")
    return lines


def write_report(runs: Path, out: Path) -> Path:
    """Writes every figure and ``REPORT.md`` under ``out``; returns the REPORT.md path.

    Raises:
        InputError: if ``runs`` holds no finished trial.
    """
    sections = [s for s in SPACES if (runs / s / "trials").is_dir()]
    sections += sorted(p.parent.name for p in runs.glob("*/trials") if p.parent.name not in sections)
    if not sections:
        raise InputError(f"no runs under {runs}; expected <section>/trials/ folders from tuning.search or tuning.study")
    out.mkdir(parents=True, exist_ok=True)
    study = read_json(runs / "study.json") if (runs / "study.json").is_file() else {}
    data = study.get("data") or _first_data(runs, sections)
    kind = "synthetic GTZAN-shaped data" if data.get("synthetic") else "real audio (GTZAN or the folder given)"
    lines = ["# Report", "", f"Data: **{kind}**, `{data.get('data_dir')}`, split `{data.get('split')}` "
             f"(seed {data.get('seed')}), sizes {data.get('sizes')}, windows of {data.get('window_seconds')} s."]
    if study.get("quick"):
        lines += ["", "A `--quick` smoke run: every trial trained for at most 2 epochs, whatever its name says."]
    if data.get("synthetic"):
        lines += ["", "These runs used synthetic data: their numbers are not GTZAN results and say nothing about "
                  "how the models do on GTZAN. Compare them with the study only for shape (which choices win)."]
    for section in sections:
        records = load_section(runs / section)
        completed = [r for r in records if r.get("status") == "completed"]
        figures = plot_curves(section, records, out) + [plot_bars(section, records, out)]
        lines += ["", f"## {section}", ""]
        carried = study.get("sections", {}).get(section)
        if carried and carried.get("base"):
            lines.append(f"Started from `{carried['base']}`" + (f", carrying {carried['carried']}" if carried["carried"] else "")
                         + ".")
            if carried.get("best", {}).get("same_as"):
                lines.append(f"Its winner `{carried['best']['trial']}` is the configuration carried forward from "
                             f"`{carried['best']['same_as']}` (same model and training choices).")
            lines.append("")
        elif carried:
            lines += ["Each trial is an architecture of its own, trained with Adam at 1e-3, batch 32.", ""]
        search = read_json(runs / section / "search.json") if (runs / section / "search.json").is_file() else {}
        if search.get("kfold"):
            kfold = search["kfold"]
            grouping = f"groups of {kfold['groups_file']}" if kfold.get("groups_file") else f"by {kfold['grouping']}"
            best = RunStore(runs / section).read_best()
            lines += [f"Objective: the mean validation track accuracy over {kfold['folds']} folds of the non-test clips "
                      f"({grouping}); the best configuration was then refitted on every non-test clip"
                      + (f" (`{best[1]['trial']}`)" if best else "") + ".", ""]
        lines += _table(records)
        lines.append("")
        if completed and section in STUDY_VALIDATION:
            best, worst = completed[0], completed[-1]
            lines.append(f"Ours: best {best[OBJECTIVE]:.2f} (`{best['trial']}`), worst {worst[OBJECTIVE]:.2f} "
                         f"(`{worst['trial']}`). Study: best {STUDY_VALIDATION[section][0]:.2f}, worst "
                         f"{STUDY_VALIDATION[section][1]:.2f} (validation accuracy).")
        elif completed and section == "input":
            ours = {r["trial"]: r[OBJECTIVE] for r in completed}
            lines.append("Ours: " + " vs ".join(f"{k} {v:.2f}" for k, v in ours.items())
                         + f". Study: spectrogram {STUDY_INPUT['spectrogram']:.2f} vs waveform {STUDY_INPUT['waveform']:.2f}.")
        if section == "training" and completed:
            configs = {r["trial"]: RunStore(runs / section).read_config(r["trial"]) for r in completed}
            path, means = plot_batch_sizes(completed, configs, out)
            figures.append(path)
            lines.append("Mean best validation accuracy per batch size: "
                         + ", ".join(f"{b}: {m:.2f}" for b, m in means.items()) + ".")
        lines += [""] + [f"![{p.stem}]({p.name})" for p in figures]
    final = study.get("final") or []
    if final:
        lines += ["", "## Final evaluation (test split)", "",
                  "The two best distinct configurations (model, optimizer, schedule, batch size, epochs, "
                  "regularization) of the sections' winners.", "",
                  "| trial | section | model | optimizer | schedule | batch size | epochs | val accuracy | "
                  "test accuracy (track) |", "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
        for item in final:
            training = item.get("training", {})
            schedule = training.get("schedule", "")
            if schedule in ("steplr", "exponentiallr"):
                schedule += f" {training.get('gamma', 1.0):g}"
            section = item["space"] + (f" (also the winner of {', '.join(item['same_as'])})" if item.get("same_as") else "")
            lines.append(f"| `{item['trial']}` | {section} | `{item.get('model', '')}` | {training.get('optimizer', '')} "
                         f"{training.get('learning_rate', '')} | {schedule} | {training.get('batch_size', '')} | "
                         f"{training.get('epochs', '')} | {item['val']:.3f} | {item['test_track_accuracy']:.3f} |")
        lines += ["", "Study: test accuracy " + ", ".join(f"{v:.2f} (`{k}`)" for k, v in STUDY_TEST.items()) + "."]
        png = Path(read_json(Path(final[0]["metrics"]))["confusion_matrix_png"])
        if png.is_file():
            shutil.copy(png, out / "final_confusion_matrix.png")
            lines += ["", "![final confusion matrix](final_confusion_matrix.png)"]
    report = out / "REPORT.md"
    write_text(report, "\n".join(lines) + "\n")
    return report


def _first_data(runs: Path, sections: list[str]) -> dict:
    for section in sections:
        for config in (runs / section / "trials").glob("*/config.json"):
            return read_json(config).get("data", {})
    return {}
