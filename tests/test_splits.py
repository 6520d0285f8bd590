import pytest

from data.catalogue import GTZAN_GENRES, Clip, DataError, scan
from data.config import DataConfig
from data.splits import PARTS, kfold_split, make_split, random_split, split_from_lists
from tests.conftest import SHARED_SPLITS


def gtzan_clips(extension=".wav", skip=()):
    return [
        Clip(f"/x/{g}/{g}.{i:05d}{extension}", f"{g}.{i:05d}", g, label, "wav")
        for label, g in enumerate(GTZAN_GENRES)
        for i in range(100)
        if f"{g}.{i:05d}" not in skip
    ]


def assert_disjoint(split):
    ids = [[c.clip_id for c in split.part(name)] for name in PARTS]
    for a in range(3):
        assert len(ids[a]) == len(set(ids[a]))
        for b in range(a + 1, 3):
            assert not set(ids[a]) & set(ids[b]), "a clip is in two parts"


def test_random_split_is_stratified_80_10_10_and_disjoint():
    split = random_split(gtzan_clips())
    assert split.sizes() == {"train": 800, "valid": 100, "test": 100}
    for name, per_genre in (("train", 80), ("valid", 10), ("test", 10)):
        for label in range(10):
            assert sum(c.label == label for c in split.part(name)) == per_genre
    assert_disjoint(split)


def test_random_split_is_deterministic_and_ignores_listing_order():
    clips = gtzan_clips()
    a = random_split(clips, seed=7)
    b = random_split(list(reversed(clips)), seed=7)
    assert a == b
    assert random_split(clips, seed=8) != a
    # Pinned: the same ids on every machine and numpy version with PCG64.
    assert [c.clip_id for c in a.valid[:3]] == ["blues.00005", "blues.00015", "blues.00018"]


def test_random_split_custom_fractions_and_bad_fractions():
    split = random_split(gtzan_clips(), fractions=(0.6, 0.2, 0.2))
    assert split.sizes() == {"train": 600, "valid": 200, "test": 200}
    with pytest.raises(ValueError, match="fractions"):
        random_split(gtzan_clips(), fractions=(0.5, 0.5, 0.5))


def test_small_genres_still_get_valid_and_test(tiny_gtzan):
    split = random_split(scan(tiny_gtzan).clips)
    assert split.sizes() == {"train": 40, "valid": 10, "test": 10}
    assert_disjoint(split)


def test_a_genre_of_three_or_four_clips_still_gets_one_valid_and_one_test_clip():
    # 10 % of 3 or 4 clips rounds to none: each part still gets one, training keeps the rest.
    clips = [c for c in gtzan_clips() if int(c.clip_id[-5:]) < (3 if c.genre == "jazz" else 4)]
    split = random_split(clips)
    for genre in GTZAN_GENRES:
        sizes = [sum(c.genre == genre for c in split.part(name)) for name in PARTS]
        assert sizes == ([1, 1, 1] if genre == "jazz" else [2, 1, 1]), (genre, sizes)
    assert_disjoint(split)


@pytest.mark.skipif(not SHARED_SPLITS.is_dir(), reason="published split lists not available")
@pytest.mark.parametrize("extension", [".wav", ".au"])
def test_fault_filtered_lists(extension):
    # The widely shared copy's jazz.00054.wav is unreadable, so it is not among the clips.
    split = split_from_lists(gtzan_clips(extension, skip={"jazz.00054"}), SHARED_SPLITS)
    assert split.sizes() == {"train": 442, "valid": 197, "test": 290}
    assert split.missing == ("jazz.00054",)
    assert_disjoint(split)


@pytest.mark.skipif(not SHARED_SPLITS.is_dir(), reason="published split lists not available")
def test_fault_filtered_lists_with_every_clip_readable():
    split = split_from_lists(gtzan_clips(), SHARED_SPLITS)
    assert split.sizes() == {"train": 443, "valid": 197, "test": 290} and split.missing == ()


@pytest.mark.skipif(not SHARED_SPLITS.is_dir(), reason="published split lists not available")
def test_stratified_lists():
    split = make_split(gtzan_clips(), DataConfig(split="lists", split_dir=str(SHARED_SPLITS / "stratified")))
    assert split.sizes() == {"train": 500, "valid": 250, "test": 250}
    assert_disjoint(split)


def test_list_errors(tmp_path):
    with pytest.raises(DataError, match="split directory not found"):
        split_from_lists(gtzan_clips(), tmp_path / "nope")
    with pytest.raises(DataError, match=r"train\*\.txt"):
        split_from_lists(gtzan_clips(), tmp_path)
    for name in PARTS:
        (tmp_path / f"{name}.txt").write_text("polka/polka.00001.wav\n")
    with pytest.raises(DataError, match="match no clip"):
        split_from_lists(gtzan_clips(), tmp_path)
    with pytest.raises(ValueError, match="--split-dir"):
        make_split(gtzan_clips(), DataConfig(split="lists"))
    with pytest.raises(ValueError, match="unknown split method 'folds'"):
        make_split(gtzan_clips(), DataConfig(split="folds"))


@pytest.mark.parametrize("lists,message", [
    ({"train": ["blues/blues.00001.wav"], "valid": ["blues/blues.00002.wav"], "test": ["blues/blues.00001.au"]},
     r"1 clip\(s\) more than once: blues.00001 \(in train and test\)"),
    ({"train": ["rock/rock.00003.wav", "rock/rock.00003.wav"], "valid": [], "test": ["rock/rock.00004.wav"]},
     r"rock.00003 \(twice in train\)"),
])
def test_lists_that_repeat_a_clip_are_rejected(tmp_path, lists, message):
    for name, entries in lists.items():
        (tmp_path / f"{name}.txt").write_text("\n".join(entries) + "\n")
    with pytest.raises(DataError, match=message) as info:
        split_from_lists(gtzan_clips(), tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_kfold_every_clip_in_exactly_one_test_fold_stratified_and_disjoint():
    clips = [c for c in gtzan_clips() if int(c.clip_id.split(".")[1]) < 25]
    folds = [kfold_split(clips, folds=5, fold=i, seed=3) for i in range(5)]
    tested = [c.clip_id for split in folds for c in split.test]
    assert sorted(tested) == sorted(c.clip_id for c in clips)  # each clip once
    for split in folds:
        assert_disjoint(split)
        assert len(split.train) + len(split.valid) + len(split.test) == len(clips)
        for label in range(10):
            assert sum(c.label == label for c in split.test) == 5
            assert sum(c.label == label for c in split.valid) == 2
    assert kfold_split(clips, folds=5, fold=2, seed=3) == folds[2]
    assert kfold_split(clips, folds=5, fold=2, seed=4) != folds[2]


@pytest.mark.parametrize("changes,message", [({"folds": 1}, "--folds must be at least 2"),
                                             ({"fold": 5}, "--fold must be from 0 to --folds - 1 = 4, got 5"),
                                             ({"window_seconds": float("nan")}, "--window-seconds"),
                                             ({"window_seconds": 0.00001}, "--window-seconds")])
def test_bad_kfold_and_window_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(split="kfold", **changes)
