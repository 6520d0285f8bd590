"""Searches that choose by cross-validation: grouped folds, the fold mean as the objective, the refit,
nested cross-validation of a whole search."""

import json
from pathlib import Path

import numpy as np
import pytest

from cli import crossval, search
from data.catalogue import DataError, scan
from data.config import DataConfig
from data.folds import FoldConfig, clip_groups, group_folds, read_groups
from tests.errors import error_line
from tests.tables import summary_rows
from tests.test_splits import gtzan_clips

FAST = ["--window-seconds", "1", "--epochs", "2", "--wandb", "disabled"]


@pytest.fixture(scope="module")
def clips(tiny_gtzan):
    return scan(tiny_gtzan).clips  # 10 genres x 6 clips


@pytest.fixture()
def wheel(wheel, tmp_path, monkeypatch):
    """The wheel, and an empty feature cache of the test's own."""
    monkeypatch.setenv("GTZAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GTZAN_MUSICNN_WHEEL", str(wheel))
    return wheel


def _check_folds(folds, clips, groups):
    assert sorted(c.clip_id for fold in folds for c in fold) == sorted(c.clip_id for c in clips)  # each clip once
    where = {c.clip_id: k for k, fold in enumerate(folds) for c in fold}
    by_group = {}
    for clip, group in zip(clips, groups):
        by_group.setdefault(group, set()).add(where[clip.clip_id])
    assert all(len(found) == 1 for found in by_group.values())  # no group straddles two folds


def test_folds_are_stratified_by_genre_and_keep_groups_whole(clips):
    for grouping in ("track", "id-block"):
        groups = clip_groups(clips, 3, grouping)
        folds = group_folds(clips, 3, groups)
        _check_folds(folds, clips, groups)
        for fold in folds:  # 6 clips per genre: 2 of each genre in every fold
            assert np.bincount([c.label for c in fold], minlength=10).tolist() == [2] * 10
    blocks = group_folds(clips, 3, clip_groups(clips, 3, "id-block"))
    jazz = [sorted(int(c.clip_id.split(".")[1]) for c in fold if c.genre == "jazz") for fold in blocks]
    assert sorted(jazz) == [[0, 1], [2, 3], [4, 5]]  # contiguous ids: an artist's clips stay together


def test_id_blocks_are_runs_of_consecutive_ids_in_every_genre():
    clips = gtzan_clips()  # 100 per genre
    groups = clip_groups(clips, 5, "id-block")
    for clip, group in zip(clips, groups):
        assert group == f"block:{clip.label}:{int(clip.clip_id[-5:]) // 20}", (clip.clip_id, group)


def test_each_fold_validates_once_on_clips_it_never_trains_on(clips):
    for config in (FoldConfig(folds=3), FoldConfig(folds=2, grouping="id-block")):
        parts = config.parts(clips)
        assert len(parts) == config.folds
        for train, valid in parts:
            assert len(train) + len(valid) == len(clips)
            assert not {c.clip_id for c in train} & {c.clip_id for c in valid}
        assert sorted(c.clip_id for _, valid in parts for c in valid) == sorted(c.clip_id for c in clips)


def test_a_group_file_keeps_its_groups_together(clips, tmp_path):
    lines = ["path,group"] + [f"{c.genre}/{c.clip_id}.wav,artist{int(c.clip_id.split('.')[1]) // 3}-{c.genre}"
                              for c in clips if c.genre in ("rock", "jazz")]
    (tmp_path / "groups.csv").write_text("\n".join(lines) + "\n")
    groups = clip_groups(clips, 2, groups=read_groups(tmp_path / "groups.csv"))
    assert groups.count("file:artist0-rock") == 3 and groups[-1].startswith(("clip:", "file:"))
    _check_folds(group_folds(clips, 2, groups), clips, groups)
    (tmp_path / "bad.csv").write_text("rock/rock.00000.wav,a\nrock/rock.00000.wav,b\n")
    with pytest.raises(DataError, match="rock.00000 is in two groups"):
        read_groups(tmp_path / "bad.csv")
    (tmp_path / "short.csv").write_text("rock/rock.00000.wav\n")
    with pytest.raises(DataError, match="row 1: expected 'path,group'"):
        read_groups(tmp_path / "short.csv")
    with pytest.raises(DataError, match="2 groups of clips cannot fill 3 folds"):
        group_folds(clips[:2], 3, ["a", "b"])
    with pytest.raises(ValueError, match="--folds must be at least 2"):
        FoldConfig(folds=1)


@pytest.mark.parametrize("tuner,extra", [("grid", ["--max-trials", "2", "--epochs", "2"]),
                                         ("random", ["--max-trials", "2", "--epochs", "2"]),
                                         ("bayesian", ["--max-trials", "2", "--epochs", "2"]),
                                         ("hyperband", ["--epochs", "2"])])
def test_a_kfold_search_scores_the_fold_mean_and_refits_the_best(wheel, tiny_gtzan, tmp_path, tuner, extra):
    argv = ["--space", "probe", "--base", "musicnn-msd", "--tuner", tuner, "--objective", "kfold", "--folds", "2",
            "--group-by", "id-block", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path), "--window-seconds", "1",
            "--wandb", "disabled", *extra]
    assert search.main(argv) == 0
    folder = tmp_path / "probe"
    rows = summary_rows(folder / "summary.csv")
    assert rows and all(row["status"] == "completed" for row in rows)
    for row in rows:
        trial = folder / "trials" / row["trial"]
        folds = [json.loads((trial / f"fold-{k}" / "record.json").read_text()) for k in range(2)]
        record = json.loads((trial / "record.json").read_text())
        assert record["folds"] == [f["val_track_accuracy"] for f in folds]
        assert record["val_track_accuracy"] == pytest.approx(np.mean(record["folds"]))
        assert float(row["val_track_accuracy"]) == pytest.approx(record["val_track_accuracy"])
    # The oracle ranked the trials by the same mean.
    scores = {json.loads(p.read_text())["trial_id"]: json.loads(p.read_text())["score"]
              for p in (folder / "keras_tuner").glob("trial_*/trial.json")}
    records = {json.loads(p.read_text())["trial_id"]: json.loads(p.read_text())
               for p in (folder / "trials").glob("*/record.json")}
    assert {i: records[i]["val_track_accuracy"] for i in records} == pytest.approx({i: scores[i] for i in records})
    best = json.loads((folder / "best" / "config.json").read_text())
    assert best["trial"] == rows[0]["trial"] and best["refit"]["status"] == "completed"
    assert best["data"]["sizes"]["valid"] == 0 and best["data"]["sizes"]["train"] == 50  # every non-test clip
    assert (folder / "best" / "model.keras").is_file()
    if tuner == "grid":  # the report says what the objective was
        from study.report import write_report

        report = write_report(tmp_path, tmp_path / "report").read_text()
        assert "Objective: the mean validation track accuracy over 2 folds of the non-test clips (by id-block)" in report
        assert "(2 folds) |" in report


def test_the_test_split_never_enters_a_kfold_search(wheel, tiny_gtzan, tmp_path):
    from training.config import RECIPES
    from training.loop import prepare_data
    from tuning.hypermodel import SpaceHyperModel
    from tuning.spaces import SPACES

    data = prepare_data(DataConfig(data_dir=str(tiny_gtzan), window_seconds=1.0))
    hypermodel = SpaceHyperModel(SPACES["probe"], data, RECIPES["adamw-cosine"], kfold=FoldConfig(folds=5))
    test = {c.clip_id for c in data.split.test}
    seen = [{c.clip_id for c in train + valid} for train, valid in hypermodel._fold_parts]
    assert all(not (ids & test) for ids in seen) and seen[0] == {c.clip_id for c in data.split.train + data.split.valid}


def test_a_killed_kfold_trial_resumes_at_its_next_fold(wheel, tiny_gtzan, tmp_path, monkeypatch):
    import tuning.hypermodel

    argv = ["--space", "probe", "--base", "musicnn-msd", "--max-trials", "1", "--objective", "kfold", "--folds", "3",
            "--data-dir", str(tiny_gtzan), "--out", str(tmp_path), *FAST]
    original, calls, kill = tuning.hypermodel.train_run, [], [True]

    def killed_at_the_third_fold(model, data, run, store, **kwargs):
        calls.append(run.trial)
        if kill[0] and run.trial.endswith("fold-2"):
            raise KeyboardInterrupt
        return original(model, data, run, store, **kwargs)

    monkeypatch.setattr(tuning.hypermodel, "train_run", killed_at_the_third_fold)
    assert search.main(argv) == 130
    trial = next((tmp_path / "probe" / "trials").iterdir())
    stamps = {k: (trial / f"fold-{k}" / "record.json").stat().st_mtime_ns for k in (0, 1)}
    calls.clear()
    kill[0] = False
    assert search.main(argv) == 0
    assert [c.rsplit("/", 1)[1] for c in calls] == ["fold-2"]  # folds 0 and 1 were kept
    assert {k: (trial / f"fold-{k}" / "record.json").stat().st_mtime_ns for k in (0, 1)} == stamps
    assert len(json.loads((trial / "record.json").read_text())["folds"]) == 3


def test_nested_crossvalidation_tests_each_search_on_a_fold_it_never_saw(wheel, tiny_gtzan, tmp_path, capsys):
    argv = ["--search", "probe", "--base", "musicnn-msd", "--tuner", "random", "--max-trials", "1", "--folds", "2",
            "--data-dir", str(tiny_gtzan), "--out", str(tmp_path), *FAST]
    assert crossval.main(argv) == 0
    results = json.loads((tmp_path / "crossval" / "search-probe" / "results.json").read_text())
    assert len(results["folds"]) == 2 and results["search_objective"] == "split"
    for row in results["folds"]:
        assert row["optimism"] == pytest.approx(row["objective"] - row["test_track_accuracy"])
        config = json.loads((tmp_path / "crossval" / "search-probe" / f"fold-{row['fold']}" / "probe" / "best" /
                             "config.json").read_text())
        assert config["data"]["split"] == "kfold" and config["data"]["fold"] == row["fold"]
    assert results["optimism"]["mean"] == pytest.approx(np.mean([r["optimism"] for r in results["folds"]]))
    assert "optimism" in capsys.readouterr().out
    assert crossval.main(argv) == 0  # resumes: nothing searched again
    assert capsys.readouterr().out.count("searched earlier") == 2
    assert crossval.main(["--search", "probe", "bncnn-32-64-128-256", "--out", str(tmp_path)]) == 2
    assert "MODEL does not go with --search" in error_line(capsys.readouterr().err)


def test_objective_flags_are_checked(tmp_path, capsys):
    assert search.main(["--space", "probe", "--group-by", "id-block", "--out", str(tmp_path)]) == 2
    assert "--groups and --group-by go with --objective kfold" in error_line(capsys.readouterr().err)
    assert search.main(["--space", "probe", "--objective", "kfold", "--groups", str(tmp_path / "no.csv"),
                        "--out", str(tmp_path)]) == 2
    assert "is not a file" in error_line(capsys.readouterr().err)
    assert search.main(["--space", "probe", "--objective", "kfold", "--folds", "1", "--out", str(tmp_path)]) == 2
    assert "--folds must be at least 2" in error_line(capsys.readouterr().err)


def test_groups_keep_a_paths_clip_id_whatever_its_extension(tmp_path):
    (tmp_path / "g.csv").write_text("blues/blues.00001.au,a\n\nblues/blues.00002.wav,a\n")
    assert read_groups(tmp_path / "g.csv") == {"blues.00001": "a", "blues.00002": "a"}
    assert Path("blues/blues.00001.au").stem == "blues.00001"
