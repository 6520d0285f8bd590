"""Every registered model name, in one place: the study's architectures and named variants,
and this toolkit's recommended models.

The lists are data shared with the search spaces in ``tuning.spaces``.
"""

from __future__ import annotations

# The study's architectures, section by section.
STUDY_MLP = (
    "3fcLayers-512-256", "3fcLayers-1024-512", "3fcLayers-2048-1024",
    "4fcLayers-1024-512-256", "4fcLayers-1024-512-512", "4fcLayers-2048-1024-512",
    "5fcLayers-1024-512-256-256", "5fcLayers-2048-1024-512-256", "5fcLayers-2048-2048-1024-512",
)
STUDY_CNN = (
    "1cnn-32-2fc-128", "1cnn-32-3fc-256-128", "1cnn-64-2fc-256",
    "2cnn-32-64-2fc-128", "2cnn-32-64-3fc-256-128", "2cnn-64-128-2fc-256", "2cnn-64-128-4fc-256-256-128",
    "3cnn-32-64-128-2fc-128", "3cnn-32-64-128-3fc-256-128", "3cnn-32-64-128-4fc-256-256-128",
    "3cnn-32-64-128-5fc-256-256-256-128", "3cnn-32-32-64-3fc-128-128", "3cnn-64-64-128-2fc-256",
    "3cnn-64-128-128-5fc-256-256-128-128",
)
REFERENCE_CNN = "3cnn-32-64-128-2fc-128"
# The activation section varies the activations of this CNN; the regularization and
# input sections start from it as well (the study's final models are its variants).
ACTIVATION_BASE = "3cnn-32-64-128-5fc-256-256-256-128"
# Study name -> option suffix on ACTIVATION_BASE ("" = its default, LeakyReLU everywhere).
STUDY_ACTIVATIONS = {
    "3cnn5fc-LeakyReLU": "",
    "3cnn5fc-ELU-1alpha": "act=elu1",
    "3cnn5fc-ELU-0.5alpha": "act=elu0.5",
    "3cnn5fc-ShiftedReLU0.3": "act=shiftedrelu0.3",
    "3cnn5fc-Swish": "act=swish",
    "3cnn-LeakyReLU-5fc-Maxout": "fc=maxout2",
    "3cnn5fc-ELU-ShiftedReLU0.3-intercalado": "act=elu1,shiftedrelu0.3",
    "3cnn5fc-LeakyReLU-Swish-intercalado": "act=leakyrelu,swish",
}
STUDY_WEIGHT_DECAYS = (1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1)
STUDY_TIME_SHIFTS = (0.15, 0.2)
STUDY_DROPOUTS = ((0.1, 0.2), (0.3, 0.5), (0.2, 0.4))

STRONG_MODEL = "bncnn-32-64-128-256"
# This toolkit's recommended models (name -> why it should generalize), measured with
# tuning.crossval on real music (README, "Results on real music").
RECOMMENDED = {
    STRONG_MODEL: "batch-normalized 4-block CNN with global average+max pooling (~0.4 M weights): "
                  "few weights and no flatten, so it cannot memorize positions in the window",
    "rescnn-32-64-128-256": "residual short-chunk CNN (two 3x3 convs + BN per block, shortcuts, global pooling; "
                            "~1.2 M weights): the music-tagging design for 2-4 s chunks",
}


def with_options(base: str, options: str) -> str:
    """``base`` with an option suffix (``""`` adds nothing)."""
    return f"{base}_{options}" if options else base


def regularization_variants(base: str = ACTIVATION_BASE) -> dict[str, str]:
    """The study's 12 regularization names -> canonical names on ``base``."""
    variants = {f"weight_decay-{wd:g}": with_options(base, f"l2={wd:g}") for wd in STUDY_WEIGHT_DECAYS}
    variants.update({f"time_shift-{s:g}": with_options(base, f"shift={s:g}") for s in STUDY_TIME_SHIFTS})
    variants.update({f"dropout{c:g}cnn-{f:g}fc": with_options(base, f"dropout={c:g},{f:g}") for c, f in STUDY_DROPOUTS})
    return variants


def presets() -> list[tuple[str, str, str]]:
    """Every registered name as ``(name, canonical name, one-line description)``, in listing order."""
    entries = []
    for name in STUDY_MLP:
        entries.append((name, name, f"dense net on the flattened log-mel window: "
                                    f"{name.split('-', 1)[1].replace('-', ', ')} hidden units"))
    for name in STUDY_CNN:
        entries.append((name, name, "2-D CNN on the log-mel spectrogram (3x3 convs, LeakyReLU, 2x2 max pooling), "
                                    "then dense layers"))
    for name, options in STUDY_ACTIVATIONS.items():
        entries.append((name, with_options(ACTIVATION_BASE, options),
                        f"{ACTIVATION_BASE} with activations {options or 'LeakyReLU'}"))
    for name, canonical in regularization_variants().items():
        entries.append((name, canonical, f"{ACTIVATION_BASE} with {canonical.split('_', 1)[1]}"))
    for base in (REFERENCE_CNN, ACTIVATION_BASE):
        entries.append((f"wave-{base}", f"wave-{base}", "1-D CNN on the raw waveform (strided stem, kernel-3 convs, "
                                                        "max pooling 4)"))
    for name, description in RECOMMENDED.items():
        entries.append((name, name, description))
    return entries
