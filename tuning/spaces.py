"""The study's experiment families as search spaces.

Each space has the study's exact grid (used by ``--tuner grid``) and a wider range for
random, Hyperband and Bayesian search (``sample``). Both produce :class:`TrialSpec` values: the
model configuration to build and the training settings the trial sets. ``tuning.hypermodel``
turns them into a KerasTuner HyperModel. The study's architectures and variant names are the
zoo's presets (``zoo.families.dense``, ``zoo.families.cnn``); the grids here are built from them.

Carried-forward choices (the study moved section by section; where this module cannot know
the study's exact winner it uses the choice below, and ``--base NAME`` replaces the model):

* ``mlp``, ``cnn``: the architectures themselves; Adam, learning rate 1e-3, batch 32.
* ``activation``, ``optimizer``, ``training``, ``regularization``, ``input``: start from
  ``3cnn-32-64-128-5fc-256-256-256-128`` (LeakyReLU), the CNN the study's activation section
  varied and its final models were built on; Adam 1e-3, batch 32 unless the space varies it.

Beyond the study, ``probe`` searches genre heads on pretrained backbones' frozen features: the
backbones of ``--base`` (one, such as ``musicnn-msd``, or several joined by '+', such as
``musicnn-msd+efficientat-mn04``) are the ones available to it, and a trial takes any of them alone
or any combination of them side by side. Every trial trains on the features cached once
(``training.features``), so a trial costs seconds. It starts from the ``adamw-cosine`` recipe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zoo.config import ModelConfig
from zoo.families.base import with_options
from zoo.families.cnn import ACTIVATION_BASE, REFERENCE_CNN, STUDY_ACTIVATIONS, STUDY_CNNS, STUDY_REGULARIZATION
from zoo.families import FAMILIES
from zoo.families.dense import STUDY_MLPS
from zoo.families.pretrained import FAMILY_OF, FEATURES, POOLED, taggers, with_backbones
from zoo.registry import resolve

if TYPE_CHECKING:
    import keras_tuner

STUDY_OPTIMIZERS = ("adagrad", "adam", "rmsprop")
STEP_GAMMAS = (0.1, 0.05, 0.01)
EXPONENTIAL_GAMMAS = (0.99, 0.95, 0.9)
TRAINING_BATCH_SIZES = (16, 32, 64, 128)
TRAINING_EPOCHS = (5, 20, 35)


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """What one trial builds and the training settings it sets.

    Attributes:
        name: Readable trial name, like the study's (``3cnn-32-64-128-2fc-128``,
            ``rmsprop-exponentiallr-0.9``, ``batch_size-16-epochs-5``). A name the zoo knows
            always names the trial's own model; a training change is named by the change.
        model: The model configuration (its window and genres are the data's, set by the HyperModel).
        training: ``training.config.TrainConfig`` fields the trial sets (optimizer, schedule,
            batch size, epochs, ...); every other field comes from the command's recipe.
    """

    name: str
    model: ModelConfig
    training: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Space:
    """One experiment family.

    Attributes:
        name: The ``--space`` value.
        description: One line for ``--help`` and reports.
        grid: ``grid(base)`` -> the study's trials, in the study's order.
        sample: ``sample(hp, base)`` -> a trial drawn from the wider range.
        default_base: The carried-forward model's name, or None when the space defines architectures.
        varies: The training fields the space chooses; the others can be carried forward
            from earlier sections (see ``tuning.study``).
        recipe: The training recipe (``training.config.RECIPES``) its trials start from.
    """

    name: str
    description: str
    grid: Callable[[ModelConfig | None], list[TrialSpec]]
    sample: Callable[[keras_tuner.HyperParameters, ModelConfig | None], TrialSpec]
    default_base: str | None = None
    varies: tuple[str, ...] = ()
    recipe: str = "study"

    def base_config(self, base: ModelConfig | None) -> ModelConfig | None:
        """The model the space varies: ``base``, else its carried-forward model (None for mlp and cnn)."""
        if base is not None or self.default_base is None:
            return base
        return resolve(self.default_base)


def _trial(model: ModelConfig, **training) -> TrialSpec:
    """A trial named by its model's canonical name."""
    return TrialSpec(model.name, model, training)


# mlp ---------------------------------------------------------------------------------
def _mlp_grid(base: ModelConfig | None) -> list[TrialSpec]:
    return [TrialSpec(name, resolve(name)) for name in STUDY_MLPS]


def _mlp_sample(hp: keras_tuner.HyperParameters, base: ModelConfig | None) -> TrialSpec:
    layers = hp.Int("layers", 3, 5)
    units = tuple(hp.Choice(f"units_{i + 1}", [128, 256, 512, 1024, 2048]) for i in range(layers - 1))
    return _trial(ModelConfig(family="dense", dense_units=units))


# cnn ---------------------------------------------------------------------------------
def _cnn_grid(base: ModelConfig | None) -> list[TrialSpec]:
    return [TrialSpec(name, resolve(name)) for name in STUDY_CNNS]


def _cnn_sample(hp: keras_tuner.HyperParameters, base: ModelConfig | None) -> TrialSpec:
    blocks = hp.Int("conv_blocks", 1, 3)
    filters = tuple(hp.Choice(f"filters_{i + 1}", [16, 32, 64, 128]) for i in range(blocks))
    layers = hp.Int("dense_layers", 1, 5)
    units = tuple(hp.Choice(f"units_{i + 1}", [64, 128, 256, 512]) for i in range(layers - 1))
    return _trial(ModelConfig(family="cnn", conv_filters=filters, dense_units=units))


# activation --------------------------------------------------------------------------
def _activation_grid(base: ModelConfig) -> list[TrialSpec]:
    specs = []
    study_base = base.name == ACTIVATION_BASE
    for name in STUDY_ACTIVATIONS:
        config = resolve(name)
        model = base.replace(conv_activation=config.conv_activation, dense_activation=config.dense_activation)
        specs.append(TrialSpec(name if study_base else model.name, model))
    return specs


def _activation_spec(hp: keras_tuner.HyperParameters, part: str, maxout: bool) -> str:
    kinds = ["relu", "leakyrelu", "elu", "shiftedrelu", "swish"] + (["maxout"] if maxout else [])
    kind = hp.Choice(f"{part}_activation", kinds)
    if kind == "leakyrelu":
        return f"leakyrelu{hp.Choice(f'{part}_slope', [0.01, 0.1, 0.2]):g}"
    if kind == "elu":
        return f"elu{hp.Choice(f'{part}_alpha', [0.5, 1.0, 1.5]):g}"
    if kind == "shiftedrelu":
        return f"shiftedrelu{hp.Choice(f'{part}_shift', [0.1, 0.3, 0.5, 1.0]):g}"
    if kind == "maxout":
        return f"maxout{hp.Choice(f'{part}_pieces', [2, 3, 4])}"
    return kind


def _activation_sample(hp: keras_tuner.HyperParameters, base: ModelConfig) -> TrialSpec:
    conv = _activation_spec(hp, "conv", maxout=False)
    dense = _activation_spec(hp, "fc", maxout=True)
    if hp.Boolean("alternate") and not dense.startswith("maxout"):
        # Alternate the two activations layer by layer through the whole network.
        conv = dense = f"{conv},{dense}"
    return _trial(base.replace(conv_activation=tuple(conv.split(",")), dense_activation=tuple(dense.split(","))))


# optimizer ---------------------------------------------------------------------------
def _optimizer_grid(base: ModelConfig) -> list[TrialSpec]:
    specs = []
    for optimizer in STUDY_OPTIMIZERS:
        for schedule, gammas in (("steplr", STEP_GAMMAS), ("exponentiallr", EXPONENTIAL_GAMMAS)):
            for gamma in gammas:
                specs.append(TrialSpec(f"{optimizer}-{schedule}-{gamma:g}", base,
                                       {"optimizer": optimizer, "schedule": schedule, "gamma": gamma}))
    return specs


def _optimizer_sample(hp: keras_tuner.HyperParameters, base: ModelConfig) -> TrialSpec:
    optimizer = hp.Choice("optimizer", list(STUDY_OPTIMIZERS))
    rate = hp.Float("learning_rate", 1e-4, 3e-2, sampling="log")
    schedule = hp.Choice("schedule", ["constant", "steplr", "exponentiallr"])
    gamma = 1.0
    if schedule == "steplr":
        gamma = hp.Float("step_gamma", 0.01, 0.5, sampling="log")
    elif schedule == "exponentiallr":
        gamma = hp.Float("exponential_gamma", 0.8, 0.999)
    name = f"{optimizer}-{schedule}" + (f"-{gamma:.3g}" if schedule != "constant" else "") + f"-lr{rate:.2g}"
    return TrialSpec(name, base, {"optimizer": optimizer, "learning_rate": rate, "schedule": schedule, "gamma": gamma})


# training ----------------------------------------------------------------------------
def _training_grid(base: ModelConfig) -> list[TrialSpec]:
    return [
        TrialSpec(f"batch_size-{b}-epochs-{e}", base, {"batch_size": b, "epochs": e, "early_stopping": False})
        for b in TRAINING_BATCH_SIZES
        for e in TRAINING_EPOCHS
    ]


def _training_sample(hp: keras_tuner.HyperParameters, base: ModelConfig) -> TrialSpec:
    batch = hp.Choice("batch_size", [8, 16, 32, 64, 128, 256])
    epochs = hp.Int("epochs", 5, 50, step=5)
    return TrialSpec(f"batch_size-{batch}-epochs-{epochs}", base,
                     {"batch_size": batch, "epochs": epochs, "early_stopping": False})


# regularization ----------------------------------------------------------------------
def _regularization_grid(base: ModelConfig) -> list[TrialSpec]:
    # The study's variants are options on its base CNN, registered under the study's names; on
    # another base the same options, named by the model they make (a name means one model).
    specs = []
    for name, options in STUDY_REGULARIZATION.items():
        model = resolve(with_options(base.name, options))
        specs.append(TrialSpec(name if base.name == ACTIVATION_BASE else model.name, model))
    return specs


def _regularization_sample(hp: keras_tuner.HyperParameters, base: ModelConfig) -> TrialSpec:
    decay = hp.Float("weight_decay", 1e-6, 0.1, sampling="log") if hp.Boolean("use_weight_decay") else 0.0
    shift = hp.Float("time_shift", 0.0, 0.3, step=0.05)
    conv_dropout = hp.Float("conv_dropout", 0.0, 0.5, step=0.1)
    dense_dropout = hp.Float("dense_dropout", 0.0, 0.6, step=0.1)
    return _trial(base.replace(weight_decay=decay, time_shift=shift, conv_dropout=conv_dropout,
                               dense_dropout=dense_dropout))


# input -------------------------------------------------------------------------------
def _with_input(base: ModelConfig, family: str) -> ModelConfig:
    if base.family not in ("cnn", "wave"):
        raise ValueError(f"the input space compares spectrogram and waveform CNNs; base {base.name!r} is a "
                         f"{base.family} model")
    return base.replace(family=family)


def _input_grid(base: ModelConfig) -> list[TrialSpec]:
    return [TrialSpec("spectrogram", _with_input(base, "cnn")), TrialSpec("waveform", _with_input(base, "wave"))]


def _input_sample(hp: keras_tuner.HyperParameters, base: ModelConfig) -> TrialSpec:
    # Wider: does the comparison hold across CNNs of other depths and widths?
    architectures = {resolve(name).name: resolve(name) for name in (REFERENCE_CNN, *STUDY_CNNS[-4:])}
    architectures[_with_input(base, "cnn").name] = _with_input(base, "cnn")
    architecture = architectures[hp.Choice("architecture", sorted(architectures))]
    family = "wave" if hp.Choice("input", ["spectrogram", "waveform"]) == "waveform" else "cnn"
    return _trial(_with_input(architecture, family))


# probe --------------------------------------------------------------------------------
# The recommended model's backbones: each alone and both side by side.
PROBE_BASE = "musicnn-msd+efficientat-mn04"


def _probe_base(base: ModelConfig) -> ModelConfig:
    if not base.tagger:
        raise ValueError(f"the probe space trains heads on pretrained backbones' features; base {base.name!r} is a "
                         f"{base.family} model (use a backbone such as musicnn-msd or efficientat-mn04, or several "
                         "joined by '+')")
    # The backbones frozen, no augmentation before them: every trial trains on the cached features.
    return base.replace(trainable="head", features="penultimate", time_shift=0.0, recording_augment=0.0,
                        spec_augment=(0, 0), dense_units=())


def _probe_backbones(base: ModelConfig) -> dict[str, ModelConfig]:
    """Every non-empty combination of the base's backbones, in their order, by its name."""
    chosen = taggers(base)
    combinations = [tuple(t for i, t in enumerate(chosen) if mask >> i & 1) for mask in range(1, 1 << len(chosen))]
    configs = [with_backbones(base, combination) for combination in sorted(combinations, key=len)]
    return {FAMILIES[config.family].render(config): config for config in configs}


def _pooled_choice(config: ModelConfig) -> tuple[str, ...]:
    """The features a head on ``config``'s backbones may take: pooled ones too where every backbone has them."""
    return FEATURES if all(FAMILY_OF[t] in POOLED for t in taggers(config)) else ("penultimate",)


def _probe_name(model: ModelConfig, training: dict[str, Any]) -> str:
    """The model's name, then the training changes: ``musicnn-msd_train=head_head=256-lr0.003-e40``."""
    short = {"learning_rate": "lr", "weight_decay": "wd", "label_smoothing": "ls", "epochs": "e"}
    return "-".join([model.name, *(f"{short[key]}{value:g}" for key, value in training.items() if key in short)])


def _probe_grid(base: ModelConfig) -> list[TrialSpec]:
    specs = []
    for backbones in _probe_backbones(_probe_base(base)).values():
        for feature in _pooled_choice(backbones):
            for head in ((), (256,)):
                for rate in (1e-3, 3e-3):
                    model = backbones.replace(features=feature, dense_units=head)
                    training = {"learning_rate": rate}
                    specs.append(TrialSpec(_probe_name(model, training), model, training))
    return specs


def _probe_sample(hp: keras_tuner.HyperParameters, base: ModelConfig) -> TrialSpec:
    choices = _probe_backbones(_probe_base(base))
    base = choices[hp.Choice("backbones", list(choices))] if len(choices) > 1 else next(iter(choices.values()))
    features = _pooled_choice(base)
    feature = hp.Choice("features", list(features)) if len(features) > 1 else "penultimate"
    layers = hp.Int("head_layers", 0, 2)
    units = tuple(hp.Choice(f"head_units_{i + 1}", [64, 128, 256, 512]) for i in range(layers))
    head_dropout = hp.Float("head_dropout", 0.0, 0.7, step=0.1)
    # musicnn's own dropout runs above the cache (before its dense layer), so it can vary too.
    tagger_dropout = (hp.Choice("tagger_dropout", [0.0, 0.25, 0.5]) if feature == "penultimate"
                      and base.family == "musicnn" else base.conv_dropout)
    model = base.replace(features=feature, dense_units=units, dense_dropout=round(head_dropout, 2),
                         conv_dropout=tagger_dropout)
    training = {"learning_rate": hp.Float("learning_rate", 3e-4, 1e-2, sampling="log"),
                "weight_decay": hp.Float("weight_decay", 1e-4, 1e-1, sampling="log"),
                "label_smoothing": hp.Choice("label_smoothing", [0.0, 0.05, 0.1, 0.2]),
                "epochs": hp.Choice("epochs", [20, 40, 60, 80])}
    training = {key: round(value, 6) if isinstance(value, float) else value for key, value in training.items()}
    return TrialSpec(_probe_name(model, training), model, training)


SPACES: dict[str, Space] = {
    space.name: space
    for space in (
        Space("mlp", "dense nets of 3 to 5 layers (study: 9, 256 to 2048 units; wider: 128 to 2048)",
              _mlp_grid, _mlp_sample),
        Space("cnn", "CNNs of 1 to 3 conv blocks (study: 14, 2 to 5 dense layers; wider: 1 to 5)", _cnn_grid, _cnn_sample),
        Space("activation", "ELU, Shifted ReLU, Leaky ReLU, Maxout, Swish, alternations (study: 8)",
              _activation_grid, _activation_sample, ACTIVATION_BASE),
        Space("optimizer", "Adagrad, Adam, RMSprop x StepLR / ExponentialLR (study: 18)",
              _optimizer_grid, _optimizer_sample, ACTIVATION_BASE, ("optimizer", "learning_rate", "schedule", "gamma")),
        Space("training", "batch size x epochs, no early stopping (study: 12)",
              _training_grid, _training_sample, ACTIVATION_BASE, ("batch_size", "epochs", "early_stopping")),
        Space("regularization", "L2, time shift, dropout (study: 12)",
              _regularization_grid, _regularization_sample, ACTIVATION_BASE),
        Space("input", "log-mel spectrogram vs raw waveform (study: 2)", _input_grid, _input_sample, ACTIVATION_BASE),
        Space("probe", "genre heads on pretrained backbones' cached features: the base's backbones alone and "
              "combined, features, hidden layers, dropout, learning rate, weight decay, label smoothing, epochs "
              "(grid: 8 per combination of the base's backbones, 4 with a VGG)", _probe_grid, _probe_sample, PROBE_BASE,
              ("learning_rate", "weight_decay", "label_smoothing", "epochs"), recipe="adamw-cosine"),
    )
}
