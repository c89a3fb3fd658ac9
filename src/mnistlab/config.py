"""Training configuration as plain data, and the presets.

A run is fully described by a `TrainConfig` (saved as `config.json` in the
run folder with the versions and backend). Presets are dicts of overrides,
so `mnistlab train --model mlp --preset fast --epochs 3` means: the model's
defaults, then the preset, then the flags.
"""

from __future__ import annotations

import dataclasses
import math

from mnistlab.errors import MnistlabError

MODELS = ("mlp", "cnn")
OPTIMIZERS = ("adam", "adamw", "sgd", "nesterov", "rmsprop")
SCHEDULES = ("plateau", "constant", "cosine", "onecycle")
# The Keras backends `--backend` offers. TensorFlow and JAX are dependencies and the whole test
# suite runs on both; PyTorch is not installed with mnistlab (its default wheels bring several GB
# of CUDA libraries) and CI runs the LR range test's tests and a training smoke test on it
# (README, "Backends").
BACKENDS = ("tensorflow", "jax", "torch")
# The package each backend imports, and how to install it when it is missing.
BACKEND_PACKAGES = {"tensorflow": ("tensorflow", "pip install tensorflow-cpu"),
                    "jax": ("jax", "pip install 'jax[cpu]'"),
                    "torch": ("torch", "pip install torch (without a GPU, the much smaller CPU build: pip install "
                                       "torch --index-url https://download.pytorch.org/whl/cpu)")}

# The keyword arguments of mnistlab.models.build_mlp / build_cnn.
MODEL_OPTIONS = {
    "mlp": ("depth", "width", "activation", "batch_norm", "bn_momentum", "dropout", "l2", "initializer",
            "rotation", "zoom", "shift", "elastic", "elastic_sigma", "crop"),
    "cnn": ("filters", "convs", "downsample", "dense", "batch_norm", "bn_momentum", "dropout", "l2", "initializer",
            "rotation", "zoom", "shift", "elastic", "elastic_sigma", "crop"),
}

# How a CNN block halves the image (mnistlab.models.build_cnn's `downsample`).
DOWNSAMPLING = ("pool", "early-pool", "stride")

# The model options and the TrainConfig fields that `mnistlab train` has a flag for (--batch-size
# for batch_size); `mnistlab tune` writes a trial's command from the same lists.
ARCH_FLAGS = ("depth", "width", "activation", "filters", "convs", "downsample", "dense", "crop", "dropout", "l2",
              "batch_norm", "bn_momentum", "rotation", "zoom", "shift", "elastic", "elastic_sigma")
TRAIN_FLAGS = ("dataset", "epochs", "batch_size", "optimizer", "lr", "schedule", "patience", "seed",
               "val_fraction", "train_limit", "one_hot", "label_smoothing", "offline_augment", "deterministic",
               "steps_per_execution", "validation_freq")

# The faster backend per model on a 2-core CPU (BENCHMARKS.md, "Exact resume, determinism, backends":
# the faster backend per model).
DEFAULT_BACKEND = {"mlp": "jax", "cnn": "tensorflow"}
# Presets that want another backend: on a GPU, JAX (docs/performance.md, "On a GPU").
PRESET_BACKEND = {("cnn", "gpu"): "jax"}


# What differs between the models' defaults: `TrainConfig(model=...)` fills these in when
# left as None, so it and `make_config(model)` give the same run.
# The CNN: cosine decay to ~0 over a fixed 20 epochs, because ReduceLROnPlateau (the seed's choice,
# `--schedule plateau`) left the rate too high for most of a run (docs/performance.md,
# "Smaller measurements behind the code").
MODEL_DEFAULTS = {
    "mlp": {"epochs": 40, "patience": 10, "schedule": "plateau"},
    "cnn": {"epochs": 20, "patience": 10, "schedule": "cosine"},
}


@dataclasses.dataclass
class TrainConfig:
    """Everything that decides a training run.

    `TrainConfig(model="cnn", ...)` and `make_config("cnn", ...)` give the same
    config: `epochs`, `patience` and `schedule` left as None take the model's
    defaults (`MODEL_DEFAULTS`); `make_config` adds named presets on top.

    Args:
        model: `mlp` or `cnn`.
        model_options: keyword overrides for `build_mlp` / `build_cnn`.
        dataset: `mnist` or `fashion_mnist`.
        epochs: maximum number of epochs (early stopping may end sooner); default per model.
        batch_size: examples per step.
        optimizer: one of `OPTIMIZERS`.
        lr: learning rate, or `"auto"` to take it from the LR range test.
        schedule: `plateau` (ReduceLROnPlateau), `constant`, `cosine` or
            `onecycle` (peaking at the range test's suggestion when `lr="auto"`);
            default per model.
        patience: epochs without improvement before early stopping; default per model.
        lr_patience: epochs without improvement before ReduceLROnPlateau acts.
        lr_factor: what ReduceLROnPlateau multiplies the rate by.
        min_lr: ReduceLROnPlateau's floor.
        label_smoothing: cross-entropy label smoothing.
        weight_decay: decoupled weight decay (for `adamw`).
        seed: seeds the split, the initial weights, dropout and shuffling.
        val_fraction: share of the training set held out for validation.
        train_limit: use only this many training examples (quick tests).
        one_hot: one-hot labels with categorical cross-entropy instead of sparse labels.
        deterministic: also turn on the backend's determinism settings (TensorFlow's
            op determinism); same-seed runs are then bit-identical.
        offline_augment: the seed's offline augmentation: add copies of every training
            image shifted one pixel in each of four directions (5x the data per epoch).
        steps_per_execution: training steps per call into the backend (Keras'
            `steps_per_execution`); more saves per-step overhead, and each epoch
            then takes a multiple of it in batches (up to `steps_per_execution - 1`
            fewer, a different random few every epoch). Batch-level callbacks and
            the progress bar see one call per `steps_per_execution` steps.
        validation_freq: validate every this many epochs, and after the last. Only
            validated epochs are compared for the best checkpoint, counted by early
            stopping and ReduceLROnPlateau, and checkpointed (a resume redoes the
            epochs since the last checkpoint, exactly as they went).
    """

    model: str = "mlp"
    model_options: dict = dataclasses.field(default_factory=dict)
    dataset: str = "mnist"
    epochs: int | None = None
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float | str = 1e-3
    schedule: str | None = None
    patience: int | None = None
    lr_patience: int = 3
    lr_factor: float = 0.5
    min_lr: float = 1e-6
    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    val_fraction: float = 0.1
    train_limit: int | None = None
    one_hot: bool = False
    offline_augment: bool = False
    deterministic: bool = False
    steps_per_execution: int = 1
    validation_freq: int = 1

    def __post_init__(self):
        for name, value in MODEL_DEFAULTS.get(self.model, {}).items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def validate(self) -> "TrainConfig":
        """Raise `MnistlabError` naming the first bad value; return self."""
        def bad(field, why):
            raise MnistlabError(f"invalid {field}={getattr(self, field)!r}: {why}")

        if self.model not in MODELS:
            bad("model", f"choose one of {', '.join(MODELS)}")
        unknown = set(self.model_options) - set(MODEL_OPTIONS[self.model])
        if unknown:
            bad("model_options", f"{', '.join(sorted(unknown))} not an option of the {self.model} "
                f"(its options: {', '.join(MODEL_OPTIONS[self.model])})")
        momentum = self.model_options.get("bn_momentum", 0.99)
        if not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            bad("model_options", f"bn_momentum must be in [0, 1) (e.g. 0.9), got {momentum!r}")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            bad("schedule", f"choose one of {', '.join(SCHEDULES)}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            bad("epochs", "must be a whole number >= 1")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            bad("batch_size", "must be a whole number >= 1")
        if not isinstance(self.steps_per_execution, int) or self.steps_per_execution < 1:
            bad("steps_per_execution", "must be a whole number >= 1")
        if not isinstance(self.validation_freq, int) or self.validation_freq < 1:
            bad("validation_freq", "must be a whole number >= 1")
        if self.lr != "auto":
            if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
                bad("lr", "must be a positive number or 'auto'")
        if not isinstance(self.patience, int) or not isinstance(self.lr_patience, int):
            bad("patience" if not isinstance(self.patience, int) else "lr_patience", "must be a whole number >= 0")
        if self.patience < 0 or self.lr_patience < 0:
            bad("patience" if self.patience < 0 else "lr_patience", "must be >= 0")
        if not 0 < self.lr_factor < 1:
            bad("lr_factor", "must be between 0 and 1")
        if self.min_lr < 0:
            bad("min_lr", "must be >= 0")
        if not 0 <= self.label_smoothing < 1:
            bad("label_smoothing", "must be in [0, 1)")
        if self.label_smoothing and not self.one_hot:
            bad("label_smoothing", "needs one-hot labels: add --one-hot")
        if self.weight_decay < 0:
            bad("weight_decay", "must be >= 0")
        if not 0 < self.val_fraction < 1:
            bad("val_fraction", "must be between 0 and 1 (e.g. 0.1)")
        if self.train_limit is not None and self.train_limit < 20:
            bad("train_limit", "must be at least 20 examples")
        if not isinstance(self.seed, int) or self.seed < 0:
            bad("seed", "must be a whole number >= 0")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            options = sorted(k for k in unknown if any(k in opts for opts in MODEL_OPTIONS.values()))
            hint = ""
            if options:
                listed = ", ".join(f"{k!r}: {data[k]!r}" for k in options)
                hint = f" ({', '.join(options)}: a model option, pass model_options={{{listed}}})"
            raise MnistlabError(f"unknown config keys: {', '.join(sorted(unknown))}{hint}; the config's keys "
                                f"are {', '.join(sorted(names))}")
        return cls(**data)


# Overrides on top of the dataclass defaults, per (model, preset).
PRESETS = {
    ("mlp", "default"): {},  # MODEL_DEFAULTS
    # Time to 98% (issue 5; BENCHMARKS.md, "Time to accuracy (issue 5)"): a small MLP (a third
    # hidden layer cost time and gained nothing in two epochs; docs/performance.md, "Smaller
    # measurements behind the code"), two epochs of one-cycle, batch 256, no augmentation or
    # dropout. The fast presets run 15 steps per call, a divisor of their epochs' batch counts,
    # to save per-step overhead. The MLP validates once, after its last epoch: a little less
    # time, the same model. Label smoothing 0.1 (one-hot labels) buys the accuracy back that the
    # central 22x22 pixels and a narrower second layer cost, for less time in all
    # (BENCHMARKS.md, "What made it fast": batch 256 and label smoothing, and its log).
    ("mlp", "fast"): {"epochs": 2, "batch_size": 256, "schedule": "onecycle", "lr": 5e-3,
                      "steps_per_execution": 15, "validation_freq": 2,
                      "one_hot": True, "label_smoothing": 0.1,
                      "model_options": {"depth": 2, "width": [512, 256], "crop": 3, "dropout": 0.0,
                                        "rotation": 0.0, "zoom": 0.0, "shift": 0.0}},
    ("cnn", "default"): {"model": "cnn"},  # MODEL_DEFAULTS
    # Time to 99.0% (issue 5; BENCHMARKS.md, "Time to accuracy (issue 5)"): a small CNN (one
    # conv per block, no augmentation or dropout), two epochs of one-cycle. Each step is made
    # cheaper without losing accuracy (BENCHMARKS.md, "What made it fast", and the lab notes its
    # rows link): the first block's convolution strides 2 instead of pooling, the second pools
    # right after its convolution so batch norm runs on 4x fewer pixels, and the model sees the
    # central 22x22 pixels (1% of MNIST's ink lies outside). Batch 256 at a higher rate is
    # faster than batch 128; label smoothing 0.1 (one-hot labels) keeps every seed above 99%.
    ("cnn", "fast"): {"model": "cnn", "epochs": 2, "schedule": "onecycle", "lr": 1.6e-2,
                      "batch_size": 256, "one_hot": True, "label_smoothing": 0.1,
                      "steps_per_execution": 15,
                      "model_options": {"filters": [16, 32], "convs": 1, "downsample": ["stride", "early-pool"],
                                        "crop": 3, "dense": 128, "dropout": 0.0,
                                        "rotation": 0.0, "zoom": 0.0, "shift": 0.0}},
    # Time to 99.5%: one more block, the default augmentation, label smoothing 0.1 (one-hot
    # labels). The first block's convolution strides 2 (at full size its one-channel
    # convolution, batch norm, ReLU and pooling cost far more of the step than of the FLOPs),
    # the others pool early, no dropout (it cost time per step and lost accuracy in so few
    # epochs), the central 26x26 pixels, batch 256, eleven epochs: as accurate as the preset
    # before in about half the time (BENCHMARKS.md, "What made it fast": strided first block,
    # and its log).
    ("cnn", "fast-995"): {"model": "cnn", "epochs": 11, "schedule": "onecycle", "lr": 1e-2,
                          "batch_size": 256, "steps_per_execution": 15,
                          "one_hot": True, "label_smoothing": 0.1,
                          "model_options": {"filters": [16, 32, 64], "convs": 1, "dense": 128,
                                            "downsample": ["stride", "early-pool", "early-pool"],
                                            "crop": 1, "dropout": 0.0}},
    # Time to 99.0% on a GPU (issue 5's GPU goal, JAX): few, large steps, since a GPU step
    # costs about the same from batch 128 to 1024. The fast CNN at batch 512 for three epochs,
    # batch-norm statistics averaged over ~10 steps instead of ~100 (with Keras' 0.99 so few
    # steps leave them near their initial values, and a seed fell under 99%), and validation
    # and checkpoints once, after the last epoch (docs/performance.md, "On a GPU", and its log).
    ("cnn", "gpu"): {"model": "cnn", "epochs": 3, "batch_size": 512, "schedule": "onecycle", "lr": 8e-3,
                     "steps_per_execution": 15, "validation_freq": 3,
                     "model_options": {"filters": [16, 32], "convs": 1, "dense": 128, "dropout": 0.0,
                                       "bn_momentum": 0.9, "rotation": 0.0, "zoom": 0.0, "shift": 0.0}},
    # The seed's recipe: 80/20 split, one-hot labels with categorical cross-entropy,
    # a CNN with L2 and dropout (no batch norm, no on-the-fly augmentation), Adam at
    # the LR range test's suggestion, ReduceLROnPlateau, early stopping patience 10.
    ("cnn", "seed"): {"model": "cnn", "epochs": 30, "patience": 10, "val_fraction": 0.2,
                      "one_hot": True, "lr": "auto", "schedule": "plateau",
                      # 16-32-64: the CNN default when this preset was measured (BENCHMARKS.md,
                      # "Accuracy of the defaults": `--preset seed`)
                      "model_options": {"filters": [16, 32, 64], "batch_norm": False,
                                        "rotation": 0.0, "zoom": 0.0, "shift": 0.0}},
}


def preset_names(model: str) -> list[str]:
    return sorted(name for m, name in PRESETS if m == model)


def make_config(model: str = "mlp", preset: str = "default", **overrides) -> TrainConfig:
    """The config for `model` under `preset`, with `overrides` (None values ignored), validated.

    `make_config("cnn")` equals `TrainConfig(model="cnn")`; presets (`preset_names(model)`)
    add their overrides. Model options go in `model_options`, which is merged with
    the preset's: `make_config("mlp", model_options={"width": 64})`.
    """
    if (model, preset) not in PRESETS:
        if model not in MODELS:
            raise MnistlabError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
        raise MnistlabError(
            f"unknown preset {preset!r} for {model}: choose one of {', '.join(preset_names(model))}"
        )
    values = {"model": model, **PRESETS[(model, preset)]}
    given = overrides.pop("model_options", None) or {}
    options = {**values.get("model_options", {}), **given}
    blocks, downsample = options.get("filters"), options.get("downsample")
    if isinstance(downsample, list) and "downsample" not in given and blocks and len(blocks) != len(downsample):
        # A preset's per-block list (e.g. a strided first block) follows other filters:
        # its first block's choice, then its last block's for the rest.
        options["downsample"] = downsample[:1] + downsample[-1:] * (len(blocks) - 1)
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["model_options"] = options
    return TrainConfig.from_dict(values).validate()
