"""The study's seven sections in order, each from the winners of the ones before, then the final evaluation.

Sections run in the study's order, ``mlp -> cnn -> activation -> optimizer -> training ->
regularization -> input``, each over its grid, each starting from the best choices of the
sections before it (as the study did):

* ``activation`` varies the best CNN of ``cnn`` (the study's own base when ``cnn`` did not run);
* ``optimizer`` trains the best model of ``activation``;
* ``training`` uses that model and the best optimizer and schedule;
* ``regularization`` adds its variants to that model, with the best optimizer and batch size;
* ``input`` compares the best regularized model on spectrogram and waveform input.

The carried-forward choices are recorded in ``<out>/study.json``; each section's search is a
run folder ``<out>/<section>/`` (``tuning.searching``). Then ``study.final`` evaluates the two
best distinct configurations. ``python -m tuning.study`` is the command line of :func:`run_study`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from data.config import DataConfig
from data.errors import RunFailed
from study.config import BASE_FROM, CARRIED_INTO, CARRY_FROM, SECTIONS
from study.final import configuration, final_evaluation
from training.config import OBJECTIVE, Reporting, TrainConfig
from training.loop import PreparedData, prepare_data
from training.runstore import RunStore, read_json, write_json
from tuning.searching import search_space
from tuning.spaces import SPACES
from zoo.config import ModelConfig
from zoo.registry import resolve


def carried_choices(section: str, finished: dict[str, dict]) -> tuple[ModelConfig | None, dict]:
    """The base model and training fields ``section`` starts from, given the finished sections.

    Returns:
        ``(base, carried)``: base is None where the section keeps its default base.
    """
    sources = [finished[name]["best"] for name in BASE_FROM.get(section, ()) if name in finished]
    base = None
    if sources:
        # A study recorded before winners kept their configuration holds the name only.
        best = sources[0]
        base = ModelConfig.from_dict(best["model_config"]) if "model_config" in best else resolve(best["model"])
    carried = {}
    for source in CARRIED_INTO.get(section, ()):
        if source in finished:
            carried.update({field: finished[source]["best"]["training"][field] for field in CARRY_FROM[source]})
    return base, carried


def run_study(out: Path, data_config: DataConfig, training: TrainConfig, sections: list[str], *, seed: int,
              quick: bool, reporting: Reporting = Reporting(), exports: Path | None = None,
              search_section: Callable[[str], None] | None = None,
              say: Callable[[str], None] = lambda line: None) -> dict:
    """Runs (or resumes) the study into ``out``; returns the study record written to ``study.json``.

    Each section's search runs in this process, or, with ``search_section``, through that
    function (``--workers``: a chief and workers of the study command for the section; each of
    them calls :func:`section_search`). ``say`` gets the progress lines.

    Raises:
        RunStoreError: if ``out`` holds a study with other settings.
        RunFailed: if no trial of a section finished.
    """
    store = RunStore(out)
    state_path = out / "study.json"
    state = read_json(state_path) if state_path.is_file() else {"sections": {}}
    data = prepare_data(data_config)
    # A rerun resumes only the same study.
    store.bind_settings("settings", {"data": data.config.to_dict(), "training": training.to_dict(), "seed": seed,
                                     "quick": quick})
    state.update(data={**data.config.to_dict(), **data.dataset}, training=training.to_dict(), quick=quick)
    write_json(state_path, state)  # the workers of a section read what earlier sections chose
    start = time.perf_counter()
    for section in SECTIONS:
        if section not in sections:
            continue
        if state["sections"].get(section, {}).get("status") == "done":
            say(f"[{section}] finished earlier: best {state['sections'][section]['best']['trial']}")
            continue
        base, carried = carried_choices(section, state["sections"])
        space = SPACES[section]
        if search_section is None:
            total = len(space.grid(space.base_config(base)))
            done = [0]

            def progress(record: dict, best: dict, section=section, total=total, done=done) -> None:
                done[0] += 1
                score = f"{record[OBJECTIVE]:.3f}" if record.get("status") == "completed" else "failed"
                say(f"[{section}] trial {done[0]} of {total}: {record['trial']} {score} | "
                    f"elapsed {time.perf_counter() - start:.0f} s | best so far {best['trial']} "
                    f"{best.get(OBJECTIVE, float('nan')):.3f}")

            section_search(section, state, out, data, training, seed=seed, quick=quick, reporting=reporting,
                           on_trial_end=progress)
        else:
            search_section(section)
        section_store = RunStore(out / section)
        records, best = section_store.ranked_records(), section_store.read_best()
        if not records or records[0].get("status") != "completed" or best is None:
            raise RunFailed(f"no trial of section {section} finished; see {out / section}/trials")
        config = best[1]
        # A winner that resolves to an earlier section's winner only kept what it carried forward.
        same_as = next((name for name, earlier in state["sections"].items() if name != section
                        and earlier.get("configuration") == list(map(_listed, configuration(config)))), None)
        state["sections"][section] = {
            "status": "done", "base": base.name if base else space.default_base, "carried": carried,
            "configuration": list(map(_listed, configuration(config))),
            "best": {"trial": config["trial"], "model": config["model"], "model_config": config["model_config"],
                     "training": config["training"], OBJECTIVE: config["metrics"][OBJECTIVE], "same_as": same_as}}
        if same_as:
            say(f"[{section}] the winner {config['trial']} is the configuration carried forward from {same_as}")
        write_json(state_path, state)
    state["final"] = final_evaluation(out, exports, say=say)
    write_json(state_path, state)
    return state


def section_search(section: str, state: dict, out: Path, data: PreparedData, training: TrainConfig, *, seed: int,
                   quick: bool, reporting: Reporting = Reporting(),
                   on_trial_end: Callable[[dict, dict], None] | None = None) -> list[dict]:
    """Searches ``section``'s grid from the choices of the sections ``state`` holds; returns its records.

    This is the whole study in one process, and the chief's or a worker's part of a section
    under ``--workers`` (every process derives the same base and carried choices from
    ``study.json``).
    """
    base, carried = carried_choices(section, state["sections"])
    return search_space(SPACES[section], data, training, out / section, seed=seed, base=base, carried=carried,
                        max_epochs=training.epochs if quick else None, reporting=reporting, on_trial_end=on_trial_end)


def run_section_role(section: str, out: Path, data_config: DataConfig, training: TrainConfig, *, seed: int,
                     quick: bool, reporting: Reporting = Reporting()) -> None:
    """This process's part (chief or worker, set by ``tuning.distributed.configure_role``) in one
    section of a ``--workers`` study."""
    section_search(section, read_json(out / "study.json"), out, prepare_data(data_config), training, seed=seed,
                   quick=quick, reporting=reporting)


def _listed(value):
    return list(value) if isinstance(value, tuple) else value
