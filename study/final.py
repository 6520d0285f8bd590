"""The study's final evaluation: the two best distinct section winners on the test split.

The study evaluated its two best configurations (model, optimizer, schedule, batch size,
epochs, regularization) on the test split; so does :func:`final_evaluation`, and it exports the
better of them on validation as a SavedModel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import zoo
from serving.evaluation import about
from serving.export import export_model, next_version_dir
from study.config import SECTIONS
from training.config import OBJECTIVE, RunConfig, TrainConfig
from training.metrics import evaluate_run
from training.runstore import RunStore, rank, write_json
from zoo.config import ModelConfig

# The training fields that make two configurations different, with the model (and so its
# regularization): the study's "model, optimizer, schedule, batch size, epochs". Early stopping,
# patience and the seed are not choices of a configuration.
CHOICES = ("optimizer", "learning_rate", "schedule", "gamma", "step_size", "batch_size", "epochs",
           "warmup_epochs", "weight_decay", "label_smoothing", "mixup")


def configuration(config: dict) -> tuple:
    """What a run resolved to: its canonical model name and training choices (for distinctness)."""
    training = TrainConfig.from_dict(config["training"])
    return ModelConfig.from_dict(config["model_config"]).name, tuple(getattr(training, field) for field in CHOICES)


def final_evaluation(out: Path, exports: Path | None, *, say: Callable[[str], None] = lambda line: None) -> list[dict]:
    """Evaluates the two best distinct section winners on the test split; exports the better one on validation.

    Sections whose winner resolved to the same model and training choices as a better one are
    skipped (a later section often keeps what it carried forward), so the two configurations
    compared always differ.
    """
    winners = {}
    for section in SECTIONS:  # the study's order
        best = RunStore(out / section).read_best()
        if best is not None:
            winners[section] = best
    ranked = rank([{**config["metrics"], "section": section} for section, (_, config) in winners.items()])
    keys = {section: configuration(config) for section, (_, config) in winners.items()}
    chosen, seen = [], set()
    for metrics in ranked:
        section = metrics["section"]
        if keys[section] in seen:
            continue
        seen.add(keys[section])
        alike = [m["section"] for m in ranked if keys[m["section"]] == keys[section]]
        chosen.append((section, *winners[section], alike))
        if len(chosen) == 2:
            break
    results = []
    for place, (section, path, config, alike) in enumerate(chosen):
        run = RunConfig.from_dict(config)
        model = zoo.load_model(path)
        name = f"{section}-{run.trial}"
        metrics = evaluate_run(model, run, out / "final" / name)
        if place == 0 and exports is not None:
            version = next_version_dir(exports, run.model_config.name)
            metrics["export"] = str(export_model(model, list(metrics["per_genre"]), version,
                                                 about=about(metrics, run.model_config)))
            write_json(out / "final" / name / "metrics.json", metrics)
        also = [s for s in alike if s != section]
        say(f"[final] {run.trial} (section {section}{', also the winner of ' + ', '.join(also) if also else ''}): "
              f"test track accuracy {metrics['track_accuracy']:.3f}, window accuracy {metrics['window_accuracy']:.3f}, "
              f"macro F1 {metrics['macro_f1']:.3f}" + (f", exported to {metrics['export']}" if "export" in metrics else ""))
        results.append({"space": section, "trial": run.trial, "model": run.model, "training": run.training.to_dict(),
                        "same_as": also, "val": config["metrics"][OBJECTIVE],
                        "test_track_accuracy": metrics["track_accuracy"],
                        "metrics": str(out / "final" / name / "metrics.json"), "export": metrics.get("export")})
    return results
