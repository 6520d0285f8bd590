"""A full check of a dataset folder: every file decoded, counted and measured (``python -m data.inspect``)."""

from __future__ import annotations

import collections

import soundfile

from data.catalogue import SAMPLE_RATE, DataError, Problem, scan
from data.decode import decode_path
from data.errors import one_line


def inspect_dataset(data_dir: str, labels: str | None = None, subset: str | None = None) -> dict:
    """Scans and fully decodes a dataset folder.

    Args:
        data_dir: A dataset folder (see ``data.catalogue``).
        labels: A labels file naming its clips and classes (``data.labels``), if not its folders.
        subset: FMA's subset, with FMA's ``tracks.csv`` as ``labels``.

    Returns:
        A JSON-ready report: ``root``, ``genres`` (clips per genre), ``genre_seconds`` (their
        duration), ``splits`` (clips per part the labels file gives, if it gives them), ``clips``,
        ``total_seconds``, ``min_seconds``, ``max_seconds``, ``sample_rates`` and
        ``channels`` (file counts per value) and ``unreadable`` (path and reason per file).

    Raises:
        DataError: if the folder is missing or holds no usable clip.
    """
    catalogue = scan(data_dir, labels, subset)
    problems = list(catalogue.problems)
    per_genre, seconds, splits = collections.Counter(), collections.Counter(), collections.Counter()
    rates, channels = collections.Counter(), collections.Counter()
    durations = []
    for clip in catalogue.clips:
        try:
            samples = decode_path(clip.path, clip.codec)
        except Exception as error:  # any decoder failure is reported, never fatal
            problems.append(Problem(clip.path, f"decoding failed ({one_line(error)})"))
            continue
        if samples.size == 0:
            problems.append(Problem(clip.path, "no audio samples"))
            continue
        try:
            info = soundfile.info(clip.path)
            rates[str(info.samplerate)] += 1
            channels[str(info.channels)] += 1
        except Exception:  # decodable in the graph but not by soundfile: count as unknown
            rates["unknown"] += 1
            channels["unknown"] += 1
        per_genre[clip.genre] += 1
        seconds[clip.genre] += samples.size / SAMPLE_RATE
        if clip.split:
            splits[clip.split] += 1
        durations.append(samples.size / SAMPLE_RATE)
    if not durations:
        raise DataError(f"no clip in {catalogue.root} could be decoded ({len(problems)} unreadable files)")
    return {
        "root": str(catalogue.root),
        "genres": {genre: per_genre[genre] for genre in catalogue.genres},
        "genre_seconds": {genre: round(seconds[genre], 3) for genre in catalogue.genres},
        "splits": {part: splits[part] for part in ("train", "valid", "test") if splits[part]},
        "clips": len(durations),
        "total_seconds": round(sum(durations), 3),
        "min_seconds": round(min(durations), 3),
        "max_seconds": round(max(durations), 3),
        "sample_rates": dict(rates),
        "channels": dict(channels),
        "unreadable": [{"path": p.path, "reason": p.reason} for p in sorted(problems, key=lambda p: p.path)],
    }
