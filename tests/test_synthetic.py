import numpy as np
import pytest
import soundfile

from cli import synthetic
from data import synthesis
from data.catalogue import GTZAN_GENRES
from tests.errors import error_line


def test_layout_and_format(tiny_gtzan):
    assert sorted(p.name for p in tiny_gtzan.iterdir() if p.is_dir()) == sorted(GTZAN_GENRES)
    info = soundfile.info(tiny_gtzan / "blues" / "blues.00005.wav")
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (22050, 1, "PCM_16", 4 * 22050)


def test_deterministic_for_a_seed():
    a = synthesis.render_clip("jazz", 1.0, np.random.default_rng([1, 5, 0]))
    b = synthesis.render_clip("jazz", 1.0, np.random.default_rng([1, 5, 0]))
    c = synthesis.render_clip("jazz", 1.0, np.random.default_rng([2, 5, 0]))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("genre", GTZAN_GENRES)
def test_every_genre_renders_music_in_range(genre):
    audio = synthesis.render_clip(genre, 3.0, np.random.default_rng(0))
    assert audio.dtype == np.float32 and audio.shape == (66150,)
    assert 0.25 <= np.abs(audio).max() <= 1.0
    # Music, not noise: the spectrum is far from flat.
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    flatness = np.exp(np.mean(np.log(spectrum + 1e-12))) / np.mean(spectrum)
    assert flatness < 0.2


def test_genres_differ_in_tempo_and_brightness():
    def centroid(genre):
        rng = np.random.default_rng(0)
        values = []
        for _ in range(4):
            spectrum = np.abs(np.fft.rfft(synthesis.render_clip(genre, 2.0, rng)))
            values.append((spectrum * np.arange(spectrum.size)).sum() / spectrum.sum())
        return np.mean(values)

    assert centroid("metal") > centroid("classical")


def test_cli_writes_dataset_and_rejects_bad_flags(tmp_path, capsys):
    assert synthetic.main([str(tmp_path / "out"), "--clips-per-genre", "1", "--seconds", "0.5"]) == 0
    assert len(list((tmp_path / "out").glob("*/*.wav"))) == 10
    for flags, message in ((["--clips-per-genre", "0"], "--clips-per-genre"), (["--seconds", "-1"], "--seconds")):
        assert synthetic.main([str(tmp_path / "x"), *flags]) == 2
        assert message in error_line(capsys.readouterr().err)


def test_generated_folder_is_marked_synthetic(tiny_gtzan, marsyas_gtzan):
    assert synthesis.is_synthetic(tiny_gtzan)
    assert not synthesis.is_synthetic(marsyas_gtzan)


def test_writing_clips_shows_a_progress_bar_on_a_terminal_only(tmp_path, monkeypatch):
    import io

    from cli.runner import progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    calls = []
    synthesis.generate(tmp_path / "a", clips_per_genre=2, seconds=0.5, workers=1,
                       progress=lambda done, total: calls.append((done, total)))
    assert calls == [(done, 20) for done in range(1, 21)]  # one step per clip written
    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        bar = progress_bar("writing clips", stream)
        for done, total in calls:
            bar(done, total)
    assert terminal.getvalue().count("\r") == 20 and terminal.getvalue().endswith("] 20/20\n")
    assert log.getvalue() == ""  # a log file or a pipe gets no bar
