"""Deliberate bugs in the core modules, and whether the tests catch each one.

Usage::

    python -m tests.mutation                 # every mutant (about 45 minutes on 2 cores)
    python -m tests.mutation --only layers-  # the mutants whose name starts so
    python -m tests.mutation --list

Each mutant is one small change to one module (the front-end layers, the splits and folds, the
run store and resume, the command runner's exit codes and quiet start, the layering rules, the
export) of the kind a real slip makes: a silenced branch, an off-by-one, a dropped check, a swapped
order. It is applied to a copy of the project (the working tree is never touched), the tests that
guard that code run there, and the mutant is *killed* when they fail. The copy first runs every mutant's tests unchanged: a
mutant only counts as killed by tests that pass without it.

A mutant that cannot change what the code does is *equivalent*: it is listed with the reason, run
like the others, and left out of the score. The score is killed / (mutants - equivalent).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "runs", "results", "build", "*.egg-info",
                                     ".pytest_cache")


LIBRARY = ("tests/test_library.py",)


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One deliberate bug.

    Attributes:
        name: ``<module group>-<what it breaks>``.
        file: The module changed, relative to the project root.
        old: Text that occurs exactly once in ``file``.
        new: What replaces it.
        tests: The pytest node ids or files that guard that code.
        equivalent: Why the change cannot alter behaviour, for an equivalent mutant; empty otherwise.
    """

    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    equivalent: str = ""


LAYERS = ("tests/test_layers.py", "tests/test_augment_in_fit.py")
BACKBONES_READ = ("tests/test_backbones.py",)
BACKBONES_PARITY = ("tests/test_backbones.py",)
FORMATS = ("tests/test_export_formats.py",)
DATASETS = ("tests/test_labels.py", "tests/test_audiocache.py")
FRONT_END = ("tests/test_pretrained.py",)
BACKENDS = ("tests/test_backends.py::test_the_tensorflow_side_of_an_export_refuses_a_model_that_answers_otherwise",
            "tests/test_backends.py::test_train_under_jax_evaluate_under_pytorch_and_the_saved_model_answers_alike")
SPLITS = ("tests/test_splits.py", "tests/test_kfold.py::test_folds_are_stratified_by_genre_and_keep_groups_whole",
          "tests/test_kfold.py::test_a_group_file_keeps_its_groups_together",
          "tests/test_kfold.py::test_id_blocks_are_runs_of_consecutive_ids_in_every_genre",
          "tests/test_kfold.py::test_each_fold_validates_once_on_clips_it_never_trains_on",
          "tests/test_kfold.py::test_groups_keep_a_paths_clip_id_whatever_its_extension")
STORE = ("tests/test_runstore.py", "tests/test_reliability.py", "tests/test_error_paths.py")
# The precise tests first: pytest stops at the first failure, so a mutant they kill costs seconds.
RESUME = ("tests/test_reliability.py::test_a_deleted_record_is_rebuilt_from_keras_tuners_state",
          "tests/test_tuning_search.py::test_interrupted_search_resumes_without_rerunning_finished_trials",
          "tests/test_kfold.py::test_a_killed_kfold_trial_resumes_at_its_next_fold", "tests/test_resume.py")
RUNNER = ("tests/test_runner.py",)
QUIET = ("tests/test_quiet_start.py::test_an_error_is_the_only_line_on_stderr_and_verbose_shows_tensorflow",
         "tests/test_quiet_start.py::test_a_training_run_prints_no_tensorflow_line_whatever_the_shells_level")
LAYERING = ("tests/test_layering.py",)
EXPORT = ("tests/test_serving.py", "tests/test_reliability.py::test_long_recordings_are_scored_window_by_window_as_the_export_does")

MUTANTS = (
    # The front-end layers.
    Mutant("layers-shift-silenced-in-graphs", "data/layers.py",
           "if not training or self.max_fraction == 0.0:",
           "if not training or self.max_fraction == 0.0 or not tf.executing_eagerly():", LAYERS),
    Mutant("layers-shift-twice-the-limit", "data/layers.py",
           'ops.cast(length, "float32") * self.max_fraction, "int32")',
           'ops.cast(length, "float32") * self.max_fraction * 2, "int32")', LAYERS),
    Mutant("layers-shift-pads-instead-of-rolling", "data/layers.py",
           "ops.mod(positions - shifts, length)", "ops.clip(positions - shifts, 0, length - 1)", LAYERS),
    Mutant("layers-shift-one-offset-per-batch", "data/layers.py",
           "(ops.shape(inputs)[0], 1), -limit, limit + 1", "(1, 1), -limit, limit + 1", LAYERS),
    Mutant("layers-shift-config-loses-seed", "data/layers.py",
           '"max_fraction": self.max_fraction, "seed": self.seed}', '"max_fraction": self.max_fraction}', LAYERS),
    Mutant("layers-logmel-reference-level", "data/layers.py",
           "20.0 * math.log10(self.n_fft / 4)", "20.0 * math.log10(self.n_fft / 2)", LAYERS),
    Mutant("layers-logmel-uncentred-frames", "data/layers.py",
           'window=shape, center=True)\n        return real * real',
           'window=shape, center=False)\n        return real * real', LAYERS),
    Mutant("layers-logmel-magnitude-not-power", "data/layers.py",
           "return real * real + imag * imag", "return ops.sqrt(real * real + imag * imag)", LAYERS),
    Mutant("layers-logmel-floor", "data/layers.py",
           "10.0 * ops.log10(ops.maximum(self.mel_power(inputs), 1e-10))",
           "10.0 * ops.log10(ops.maximum(self.mel_power(inputs), 1e-6))", LAYERS),
    Mutant("layers-logmel-bands-left-first", "data/layers.py",
           "return ops.swapaxes(self.mel(inputs), 1, 2)",
           "return ops.reshape(self.mel(inputs), (ops.shape(inputs)[0], -1, self.n_mels))", LAYERS),
    Mutant("layers-specaugment-at-inference", "data/layers.py",
           "if not training or self.masks == 0 or", "if self.masks == 0 or", LAYERS),
    Mutant("layers-specaugment-fills-zeros", "data/layers.py",
           "fill = ops.mean(inputs, axis=(1, 2), keepdims=True)", "fill = ops.zeros_like(inputs)", LAYERS),
    Mutant("layers-specaugment-no-time-masks", "data/layers.py",
           "masked = ops.logical_or(masked, self._mask(batch, frames, self.time_width)[:, :, None])", "pass", LAYERS),
    Mutant("layers-conditions-probability-inverted", "data/layers.py",
           "seed=self.seed_generator) < self.probability", "seed=self.seed_generator) > self.probability", LAYERS),
    Mutant("layers-conditions-noise-always", "data/layers.py",
           "return x + ops.where(noisy, noise, 0.0)", "return x + noise", LAYERS),
    Mutant("layers-conditions-no-low-pass", "data/layers.py",
           "response = low_pass * tilt_gain", "response = tilt_gain", LAYERS),
    Mutant("layers-musicnn-power-scale", "data/layers.py",
           "self._scale = (self.MEL_FFT / self.n_fft) ** 2", "self._scale = self.MEL_FFT / self.n_fft",
           FRONT_END),
    Mutant("layers-musicnn-compression", "data/layers.py",
           "ops.log10(1.0 + 10000.0 * mel)", "ops.log10(1.0 + 1000.0 * mel)", FRONT_END),
    Mutant("layers-musicnn-mel-scale", "data/layers.py",
           "math.log(6.4) / 27.0", "math.log(6.4) / 26.0", FRONT_END),
    Mutant("layers-musicnn-no-resampler-roll-off", "data/layers.py",
           "* rolloff[:, None]).astype(np.float32)", "* 1.0).astype(np.float32)", FRONT_END),
    # The splits and folds.
    Mutant("splits-random-depends-on-listing-order", "data/splits.py",
           "group = sorted((c for c in clips if c.label == label), key=lambda c: c.clip_id)\n"
           "        order = rng.permutation(len(group))\n        n_valid",
           "group = [c for c in clips if c.label == label]\n        order = rng.permutation(len(group))\n        n_valid",
           SPLITS),
    Mutant("splits-random-valid-and-test-overlap", "data/splits.py",
           '"test": order[n_train + n_valid :]}', '"test": order[n_train:]}', SPLITS),
    Mutant("splits-random-small-genre-no-test", "data/splits.py",
           "n_test = max(n_test, 1 if fractions[2] > 0 else 0)", "pass", SPLITS),
    Mutant("splits-kfold-same-test-fold", "data/splits.py",
           "if position % folds == fold}", "if position % folds == 0}", SPLITS),
    Mutant("splits-kfold-validates-on-test", "data/splits.py",
           "rest = [i for i in range(len(group)) if i not in test]", "rest = list(range(len(group)))", SPLITS),
    Mutant("splits-lists-repeats-allowed", "data/splits.py",
           "    _check_no_repeats(listed, folder)\n", "", SPLITS),
    Mutant("splits-lists-extension-kept", "data/splits.py",
           "return Path(name).stem if name.lower()", "return name if name.lower()", SPLITS),
    Mutant("folds-groups-split", "data/folds.py",
           "            assigned[i] = fold\n", "            assigned[i] = (fold + i) % folds\n", SPLITS),
    Mutant("folds-ignore-genres", "data/folds.py",
           "load = (per_genre * (labels > 0)).sum(axis=1)", "load = per_genre.sum(axis=1) * 0", SPLITS),
    Mutant("folds-train-on-the-validation-fold", "data/folds.py",
           "for i, fold in enumerate(folds) if i != k for c in fold)",
           "for i, fold in enumerate(folds) for c in fold)", SPLITS),
    Mutant("folds-id-blocks-not-contiguous", "data/folds.py",
           "np.array_split(np.arange(len(genre)), folds)",
           "np.array_split(np.random.default_rng(0).permutation(len(genre)), folds)", SPLITS),
    Mutant("folds-group-file-keeps-extension", "data/folds.py",
           "clip_id = Path(row[0].strip()).stem", "clip_id = Path(row[0].strip()).name", SPLITS),
    # The run store.
    Mutant("store-write-in-place", "training/runstore.py",
           'with os.fdopen(handle, "w", newline="") as f:\n            f.write(text)\n        os.replace(temporary, path)',
           'os.close(handle)\n        os.unlink(temporary)\n        path.write_text(text)', STORE),
    Mutant("store-private-files", "training/runstore.py",
           "os.chmod(temporary, 0o666 & ~_umask())", "pass", STORE),
    Mutant("store-record-before-history", "training/runstore.py",
           "self.write_history(trial, history)\n        self.write_record(trial, record)",
           "self.write_record(trial, record)\n        self.write_history(trial, history)", STORE),
    Mutant("store-other-settings-accepted", "training/runstore.py",
           "        if differs:\n            raise RunStoreError(", "        if False:\n            raise RunStoreError(",
           STORE),
    Mutant("store-failed-run-counts-as-finished", "training/runstore.py",
           'if record is None or record.get("status") != "completed":', "if record is None:", STORE),
    Mutant("store-finished-without-its-model", "training/runstore.py",
           'if with_model and not (folder / "model.keras").is_file():', "if False:", STORE),
    Mutant("store-old-record-left-by-a-retrain", "training/runstore.py",
           'for name in ("record.json", "history.json"', 'for name in ("history.json"', STORE),
    Mutant("store-best-not-recovered", "training/runstore.py",
           "            os.replace(old, self.best_dir)\n        for staging",
           "            shutil.rmtree(old)\n        for staging", STORE),
    Mutant("store-rank-lowest-first", "training/runstore.py",
           "-record.get(OBJECTIVE, 0.0) if completed", "record.get(OBJECTIVE, 0.0) if completed", STORE),
    Mutant("store-settings-never-differ", "training/runstore.py",
           "if recorded.get(key) != value]", "if False]", STORE),
    Mutant("store-lock-ignored", "training/runstore.py",
           'elif not _stale(holder, me["host"]):', "elif False:", STORE),
    Mutant("store-stale-lock-kept", "training/runstore.py",
           "    except ProcessLookupError:\n        return True", "    except ProcessLookupError:\n        return False",
           STORE),
    Mutant("store-string-metrics-accepted", "training/runstore.py",
           "    if bad:\n        raise RunStoreError", "    if False:\n        raise RunStoreError", STORE),
    Mutant("store-fresh-deletes-the-lock", "training/runstore.py",
           '        if child.name == ".lock":\n            continue\n', "", STORE),
    # Resuming searches.
    Mutant("resume-unpromoted-best-dropped", "tuning/tuner.py",
           'if place == 0 and (best is None or best[1].get("trial") != record["trial"]):', "if False:", RESUME),
    Mutant("resume-lost-records-not-rebuilt", "tuning/tuner.py",
           "if trial.status != TrialStatus.COMPLETED or trial.trial_id in self.records:", "if True:", RESUME),
    Mutant("resume-finished-folds-retrained", "tuning/hypermodel.py",
           "record = store.finished_run(fold_run.trial, fold_run, with_model=False)", "record = None", RESUME),
    Mutant("resume-summary-not-written-per-trial", "tuning/tuner.py",
           "        self.store.write_summary(ranked)\n        if self.report_trial",
           "        if self.report_trial", RESUME),
    # The command runner's exit codes.
    Mutant("runner-none-is-not-zero", "cli/runner.py", "return command(args) or 0", "return command(args)", RUNNER),
    Mutant("runner-interrupt-exits-1", "cli/runner.py",
           'rerun the same command to resume"), 130)', 'rerun the same command to resume"), 1)', RUNNER),
    Mutant("runner-os-error-is-a-traceback", "cli/runner.py",
           "except (ValueError, OSError) as error:", "except ValueError as error:", RUNNER),
    Mutant("runner-every-toolkit-error-exits-2", "cli/runner.py",
           "return fail(prog, error, error.exit_code)", "return fail(prog, error, 2)", RUNNER),
    Mutant("runner-multi-line-errors", "data/errors.py",
           'return " ".join(str(error).split())', "return str(error)", RUNNER),
    Mutant("runner-sigterm-kills", "cli/runner.py",
           "signal.signal(signal.SIGTERM, _terminate)  #", "pass  #", RUNNER),
    Mutant("runner-bad-flag-exits-1", "cli/runner.py",
           'self.exit(2, f"{self.prog}: error:', 'self.exit(1, f"{self.prog}: error:', RUNNER),
    Mutant("runner-bad-flag-without-usage", "cli/runner.py",
           "        self.print_usage(sys.stderr)\n", "", RUNNER),
    Mutant("runner-traceback-header-before-errors", "cli/runner.py",
           '    print(f"{prog}: error: {one_line(error)}", file=sys.stderr)',
           '    print("Traceback (most recent call last):", file=sys.stderr)\n'
           '    print(f"{prog}: error: {one_line(error)}", file=sys.stderr)', RUNNER),
    Mutant("runner-quiet-keeps-the-shell-log-level", "cli/runner.py",
           'os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"', 'os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")', QUIET),
    Mutant("runner-quiet-stderr-not-redirected", "cli/runner.py",
           "        os.dup2(null, 2)\n        import tensorflow", "        import tensorflow", QUIET),
    Mutant("runner-retracing-warnings-shown", "cli/runner.py",
           'return "triggered tf.function retracing" not in record.getMessage()', "return True",
           ("tests/test_quiet_start.py::test_a_training_run_prints_no_tensorflow_line_whatever_the_shells_level",)),
    # Names and results that mean one thing.
    Mutant("names-study-names-on-any-base", "tuning/spaces.py",
           "specs.append(TrialSpec(name if base.name == ACTIVATION_BASE else model.name, model))",
           "specs.append(TrialSpec(name, model))",
           ("tests/test_tuning_spaces.py::test_a_trial_name_the_zoo_knows_names_that_trials_model",)),
    Mutant("names-evaluations-keyed-by-trial-name", "training/runstore.py",
           "        return RunStore(folder.parent).evaluation_dir(trial)\n    return folder / EVALUATION",
           '        return folder.parent.parent / "evaluations" / trial\n    return folder.parent.parent / "evaluations" / trial',
           ("tests/test_serving.py",)),
    Mutant("names-evaluation-kept-by-a-retrain", "training/runstore.py",
           "        shutil.rmtree(folder / EVALUATION, ignore_errors=True)\n", "",
           ("tests/test_runstore.py::test_a_retrain_starts_from_an_empty_folder",)),
    # The layering rules (the static check of imports and exits).
    Mutant("layering-data-imports-a-command", "data/decode.py",
           "from data.catalogue import CODECS\n", "from data.catalogue import CODECS\nfrom cli import runner  # noqa\n",
           LAYERING),
    Mutant("layering-tuning-imports-study-at-run-time", "tuning/searching.py",
           "import json\n", "import importlib\nimport json\n\n\ndef _sections():\n"
           "    return importlib.import_module(\"study.sections\")\n", LAYERING),
    Mutant("layering-library-ends-the-process", "training/runstore.py",
           "        Path(temporary).unlink(missing_ok=True)\n        raise OSError(",
           "        Path(temporary).unlink(missing_ok=True)\n        os._exit(1)\n        raise OSError(", LAYERING),
    # The export.
    Mutant("export-no-clipping", "serving/export.py",
           "waveform = tf.clip_by_value(waveform, -1.0, 1.0)", "waveform = tf.identity(waveform)", EXPORT),
    Mutant("export-no-finite-check", "serving/export.py",
           'tf.debugging.assert_all_finite(waveform, "waveform: NaN or infinite samples")', "tf.no_op()", EXPORT),
    Mutant("export-empty-batch-accepted", "serving/export.py",
           'tf.debugging.assert_positive(batch, message="waveform: the batch is empty")', "tf.no_op()", EXPORT),
    Mutant("export-genres-reordered", "serving/export.py",
           "names = tf.constant(list(genres))", "names = tf.constant(list(genres)[::-1])", EXPORT),
    Mutant("export-window-misreported", "serving/export.py",
           '{"window_samples": window,', '{"window_samples": window // 2,', EXPORT),
    Mutant("export-version-after-a-gap", "serving/export.py",
           "max(versions, default=0) + 1", "len(versions) + 1", EXPORT),
    Mutant("export-dft-window-not-periodic", "data/layers.py",
           "window = np.hanning(n_fft + 1)[:-1]", "window = np.hanning(n_fft)", LAYERS),
    Mutant("export-musicnn-front-end-not-portable", "data/layers.py",
           "power = stft_power(waveform, self.n_fft, self.hop_length, self.portable)\n        mel = ops.matmul(power, "
           "ops.convert_to_tensor(self._filters)) * self._scale",
           "power = stft_power(waveform, self.n_fft, self.hop_length)\n        mel = ops.matmul(power, "
           "ops.convert_to_tensor(self._filters)) * self._scale", LAYERS),
    Mutant("export-portable-front-end-left-on", "serving/export.py",
           "            layer.portable = False\n", "            layer.portable = True\n", FORMATS),
    # Every Keras backend: exports from other backends, the record.
    Mutant("backends-export-unchecked-across-backends", "serving/export.py",
           "        if not difference <= PARITY_TOLERANCE:\n            raise EvaluationError(f\"the model loaded",
           "        if False:\n            raise EvaluationError(f\"the model loaded", BACKENDS),
    Mutant("backends-record-omits-the-backend", "training/loop.py",
           '"backend": keras.backend.backend(), **record_fields}', "**record_fields}", BACKENDS),
    # Datasets labelled by a file, and the disk cache of decoded audio.
    Mutant("labels-fma-subsets-not-nested", "data/labels.py",
           "allowed = FMA_SUBSETS[: FMA_SUBSETS.index(subset) + 1] if subset else FMA_SUBSETS",
           "allowed = (subset,) if subset else FMA_SUBSETS", DATASETS),
    Mutant("labels-paths-may-leave-the-data-folder", "data/catalogue.py",
           'if Path(entry.path).is_absolute() or ".." in Path(entry.path).parts:', "if False:", DATASETS),
    Mutant("audiocache-fingerprint-ignores-the-modification-time", "data/audiocache.py",
           "\\0{status.st_mtime_ns}", "", DATASETS),
    Mutant("audiocache-workers-fill-at-once", "data/pipeline.py",
           "with audiocache.filling(root):", "if True:", DATASETS),
    Mutant("export-last-window-dropped", "data/pipeline.py",
           "tf.cond(samples % window > 0, lambda: tf.concat([starts, [samples - window]], 0), lambda: starts)",
           "starts", EXPORT),
    Mutant("export-short-clip-not-padded", "data/pipeline.py",
           "short = tf.maximum(0, window - tf.shape(audio)[-1])", "short = 0 * tf.shape(audio)[-1]", EXPORT),
    Mutant("export-max-not-mean", "data/pipeline.py",
           "return sums / ops.maximum(counts, 1)",
           "return ops.segment_max(probabilities, clip_index, num_segments=n_clips)", EXPORT),
    # The AudioSet backbones: their checkpoints read without running them, their layers equal to the originals.
    Mutant("backbones-unpickler-trusts-any-global", "zoo/checkpoints.py",
           "        if (module, name) in _ALLOWED:\n            return _ALLOWED[(module, name)]",
           "        if True:\n            return _ALLOWED.get((module, name)) or super().find_class(module, name)",
           BACKBONES_READ),
    Mutant("backbones-download-unchecked", "zoo/checkpoints.py",
           "    if release.sha256 is not None and (actual := sha256_of(partial)) != release.sha256:",
           "    if False:", BACKBONES_READ),
    Mutant("backbones-tensor-past-its-data", "zoo/checkpoints.py",
           " or last >= flat.size:", ":", BACKBONES_READ),
    Mutant("backbones-padding-as-keras-same", "zoo/builders/efficientat.py",
           "x = keras.layers.ZeroPadding2D((kernel - 1) // 2, name=_name(path) + \"_pad\")(x)",
           "x = keras.layers.ZeroPadding2D(((0, kernel - 1), (0, kernel - 1)), name=_name(path) + \"_pad\")(x)",
           BACKBONES_PARITY),
    Mutant("backbones-squeeze-excitation-skipped", "zoo/builders/efficientat.py",
           "            x = _squeeze_excite(x, expanded, f\"{path}.{part}\")",
           "            _squeeze_excite(x, expanded, f\"{path}.{part}\")", BACKBONES_PARITY),
    Mutant("backbones-periodic-window", "data/layers.py",
           "hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.WINDOW) / (self.WINDOW - 1))",
           "hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.WINDOW) / self.WINDOW)", BACKBONES_PARITY),
    Mutant("backbones-resampler-phase-off", "data/layers.py",
           "        position = phase * down / up\n", "        position = (phase + 0.5) * down / up\n",
           BACKBONES_PARITY),
    Mutant("backbones-cnn14-time-max-only", "zoo/builders/panns.py",
           "return ops.max(inputs, axis=1) + ops.mean(inputs, axis=1)", "return ops.max(inputs, axis=1)",
           BACKBONES_PARITY),
    Mutant("backbones-head-export-unchecked", "serving/export.py",
           "    if not difference <= PARITY_TOLERANCE:\n        path.unlink(missing_ok=True)\n        raise EvaluationError(f\"the head",
           "    if False:\n        path.unlink(missing_ok=True)\n        raise EvaluationError(f\"the head",
           ("tests/test_ready.py::test_a_head_that_does_not_give_the_models_answers_is_not_kept",)),
    Mutant("soak-judged-from-its-start", "serving/loadtest.py",
           "return next(((at, vitals) for at, vitals in self.samples if at >= self.seconds / 2), (0.0, self.start))",
           "return (0.0, self.start)", ("tests/test_bench_smoke.py::test_a_soak_reports_what_grew",)),
    # Tagging a library: the windows cut, the plan over a whole song, the table a rerun continues.
    Mutant("library-no-end-window", "serving/decoding.py",
           "    elif sent[-1] + window < total and", "    elif False and", LIBRARY),
    Mutant("library-plan-from-the-start", "serving/decoding.py",
           "picks = np.unique(np.round(np.linspace(0, len(starts) - 1, limit)).astype(int))",
           "picks = np.arange(limit)", LIBRARY),
    Mutant("library-skip-changed-files", "serving/library.py",
           "return print_ is not None and (int(row[\"size\"]), int(row[\"modified_ns\"])) == print_",
           "return True", LIBRARY),
    Mutant("library-keep-partial-row", "serving/library.py",
           "complete = raw[: raw.rfind(b\"\\n\") + 1]", "complete = raw", LIBRARY),
    Mutant("library-no-compaction", "serving/library.py",
           "        if not self.superseded:\n            return\n", "        return\n", LIBRARY),
    Mutant("library-errors-dropped", "serving/library.py",
           "                queued[:] = [(i, w) for i, w in queued if i != message[1]]\n                finish(message[1], message[2])",
           "                queued[:] = [(i, w) for i, w in queued if i != message[1]]\n                flight.pop(message[1])",
           LIBRARY),
    Mutant("library-guard-off", "serving/precision.py",
           "    if found.top1 < MIN_AGREEMENT:", "    if False:",
           ("tests/test_library.py::test_a_reduced_precision_that_disagrees_is_refused_with_its_figures",)),
)


def apply(mutant: Mutant, root: Path) -> str:
    """Writes ``mutant`` into the copy at ``root``; returns the file's original text.

    Raises:
        ValueError: if the mutant's text does not occur exactly once (the code moved on).
    """
    path = root / mutant.file
    original = path.read_text()
    if original.count(mutant.old) != 1:
        raise ValueError(f"mutant {mutant.name}: its text occurs {original.count(mutant.old)} times in {mutant.file}, "
                         "not once; update it to the code")
    path.write_text(original.replace(mutant.old, mutant.new))
    return original


def copy_project(into: Path) -> Path:
    """A copy of the project beside a link to the shared test data, as the tests expect to find it."""
    copy = into / ROOT.name
    shutil.copytree(ROOT, copy, ignore=COPY_IGNORE)
    if SHARED.is_dir():
        (into / "shared").symlink_to(SHARED)
    return copy


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float, first_failure: bool = True) -> tuple[str, float]:
    """``("pass" | "fail" | "timeout" | "error", seconds)`` of ``tests`` in the copy, slow ones included."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "slow or not slow",
               "--no-header", "-o", "addopts=", *(["-x"] if first_failure else []), *tests]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=copy, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    outcome = {0: "pass", 1: "fail"}.get(result.returncode, "error")
    if outcome == "error":
        print(result.stdout[-2000:] + result.stderr[-2000:], file=sys.stderr)
    return outcome, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Runs the mutants; prints one line per mutant and the score. Exit 1 if a non-equivalent mutant survived."""
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=[], help="run the mutants whose name starts with one of these")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutant's tests (default 900)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(m.name.startswith(prefix) for prefix in args.only)]
    if not chosen:
        parser.error(f"--only {' '.join(args.only)} matches no mutant; see --list")
    if args.list:
        for mutant in chosen:
            print(f"{mutant.name:42} {mutant.file:22} {' '.join(mutant.tests)}")
        return 0
    with tempfile.TemporaryDirectory(prefix="mutation-") as temporary:
        copy = copy_project(Path(temporary))
        for mutant in chosen:  # every mutant still applies before an hour is spent
            (copy / mutant.file).write_text(apply(mutant, copy))
        baseline = tuple(dict.fromkeys(test for mutant in chosen for test in mutant.tests))
        outcome, seconds = run_tests(copy, baseline, args.timeout * 4, first_failure=False)
        print(f"unchanged code: {outcome} ({len(baseline)} test targets, {seconds:.0f} s)", flush=True)
        if outcome != "pass":
            print("the tests fail without any mutant: fix them first", file=sys.stderr)
            return 2
        killed, survivors, equivalent = 0, [], 0
        for mutant in chosen:
            original = apply(mutant, copy)
            try:
                outcome, seconds = run_tests(copy, mutant.tests, args.timeout)
            finally:
                (copy / mutant.file).write_text(original)
            verdict = {"fail": "killed", "timeout": "killed (timed out)", "error": "killed (tests errored)",
                       "pass": "SURVIVED"}[outcome]
            if mutant.equivalent:
                equivalent += 1
                verdict += f" - equivalent: {mutant.equivalent}"
            elif outcome != "pass":
                killed += 1
            else:
                survivors.append(mutant.name)
            print(f"{mutant.name:42} {verdict} ({seconds:.0f} s)", flush=True)
    scored = len(chosen) - equivalent
    print(f"mutation score: {killed}/{scored} non-equivalent mutants killed ({equivalent} equivalent)")
    if survivors:
        print("survived: " + ", ".join(survivors))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
