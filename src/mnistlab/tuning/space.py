"""The search space: a plain dict a user can read, edit, write as TOML or JSON.

Each entry names one option of `TrainConfig` or of the model builder and says
what to try:

    {"depth": {"min": 2, "max": 4},                        # whole numbers 2, 3, 4
     "width": [256, 512, 1024],                            # one of these
     "dropout": {"min": 0.0, "max": 0.4, "step": 0.05},    # a grid of numbers
     "lr": {"min": 3e-4, "max": 1e-2, "sampling": "log"},  # log-uniform
     "batch_norm": True}                                   # fixed: not searched

A list means "one of these", a table with `min`/`max` (and optional `step`,
`sampling` = "linear" or "log") a range, anything else a fixed value. `lr` may
be "auto": each trial runs the LR range test on its own model and trains at its
suggestion. `augment` scales the model's default rotation, zoom and shift
together (0 turns augmentation off, 1 is the default). CNN `filters` are lists,
so choices of them are lists of lists: `filters = [[16, 32, 64], [24, 48, 96]]`.

Everything is checked before a search starts; a bad entry raises
`MnistlabError` naming it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import tomllib
from pathlib import Path

from mnistlab.config import (ARCH_FLAGS, DOWNSAMPLING, MODEL_OPTIONS, OPTIMIZERS, SCHEDULES, TRAIN_FLAGS,
                             make_config)
from mnistlab.errors import MnistlabError

DEFAULT_SPACES = {
    "mlp": {
        "depth": {"min": 2, "max": 4},
        "width": [256, 512, 1024],
        "dropout": {"min": 0.0, "max": 0.4, "step": 0.05},
        "l2": [0.0, 1e-5, 1e-4],
        "batch_norm": [True, False],
        "lr": {"min": 3e-4, "max": 1e-2, "sampling": "log"},
        "optimizer": ["adam", "nesterov", "rmsprop"],
        "batch_size": [64, 128, 256],
        "augment": {"min": 0.0, "max": 1.5, "step": 0.5},
    },
    "cnn": {
        "filters": [[16, 32, 64], [24, 48, 96], [32, 64, 128]],
        "convs": [1, 2],
        "dense": [128, 256],
        "dropout": {"min": 0.0, "max": 0.4, "step": 0.05},
        "l2": [0.0, 1e-5, 1e-4],
        "batch_norm": [True, False],
        "lr": {"min": 3e-4, "max": 1e-2, "sampling": "log"},
        "optimizer": ["adam", "nesterov"],
        "batch_size": [64, 128, 256],
        "augment": {"min": 0.0, "max": 1.5, "step": 0.5},
    },
}

# The TrainConfig fields a search may set (each has a `mnistlab train` flag).
TRAIN_NAMES = ("lr", "optimizer", "batch_size", "schedule", "patience")
AUGMENT = ("rotation", "zoom", "shift")


def _number(lo=None, hi=None, hi_open=False, lo_open=False):
    def ok(v):
        return ((lo is None or (v > lo if lo_open else v >= lo))
                and (hi is None or (v < hi if hi_open else v <= hi)))
    return ok


# name -> (kind, check, what a good value is)
RULES = {
    "depth": ("int", _number(1, 64), "a whole number from 1 to 64"),
    "width": ("int", _number(1), "a whole number >= 1"),
    "filters": ("ints", lambda v: len(v) >= 1 and min(v) >= 1,
                "a list of whole numbers >= 1, one per block, e.g. [16, 32, 64]"),
    "convs": ("int", _number(1, 8), "a whole number from 1 to 8"),
    "dense": ("int", _number(1), "a whole number >= 1"),
    "dropout": ("float", _number(0, 1, hi_open=True), "a number in [0, 1)"),
    "l2": ("float", _number(0), "a number >= 0"),
    "batch_norm": ("bool", lambda v: True, "true or false"),
    "bn_momentum": ("float", _number(0, 1, hi_open=True), "a number in [0, 1)"),
    "activation": ("str", lambda v: bool(v), "a Keras activation name, e.g. relu"),
    "initializer": ("str", lambda v: bool(v), "a Keras initializer name, e.g. he_normal"),
    "downsample": ("str", lambda v: v in DOWNSAMPLING, f"one of {', '.join(DOWNSAMPLING)}"),
    "rotation": ("float", _number(0, 180), "degrees from 0 to 180"),
    "zoom": ("float", _number(0, 1, hi_open=True), "a number in [0, 1)"),
    "shift": ("float", _number(0, 1, hi_open=True), "a number in [0, 1)"),
    "elastic": ("float", _number(0), "a number >= 0"),
    "elastic_sigma": ("float", _number(0, lo_open=True), "a number > 0"),
    "crop": ("int", _number(0, 10), "a whole number of pixels from 0 to 10"),
    "augment": ("float", _number(0, 5), "a number from 0 (off) to 5 (1 = the model's default augmentation)"),
    "lr": ("lr", _number(0, 10, lo_open=True), "a number in (0, 10] or \"auto\""),
    "optimizer": ("str", lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
    "schedule": ("str", lambda v: v in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
    "batch_size": ("int", _number(1, 65536), "a whole number >= 1"),
    "patience": ("int", _number(0), "a whole number >= 0"),
}


def known_names(model: str) -> list[str]:
    return [n for n in RULES if n in MODEL_OPTIONS[model] or n in TRAIN_NAMES or n == "augment"]


def default_space(model: str = "mlp") -> dict:
    """The default search space for `model`, a fresh dict to edit."""
    if model not in DEFAULT_SPACES:
        raise MnistlabError(f"unknown model {model!r}: choose one of {', '.join(DEFAULT_SPACES)}")
    return copy.deepcopy(DEFAULT_SPACES[model])


def load_space_file(path) -> dict:
    """Read a space file (TOML or JSON, by its suffix; TOML otherwise)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise MnistlabError(f"cannot read space file {path} ({e.strerror or e})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise MnistlabError(f"space file {path} is not valid {kind} ({e})") from None
    if not isinstance(data, dict):
        raise MnistlabError(f"space file {path} must hold a table of entries (name = values), got {type(data).__name__}")
    return data


def space_from_file(path, model: str) -> dict:
    """The space a `--space FILE` asks for: its entries over the default space
    (narrowing or replacing single entries), or only its entries with
    `base = "none"` at the top."""
    data = load_space_file(path)
    base = data.pop("base", "default")
    if base not in ("default", "none"):
        raise MnistlabError(f"space file {path}: base = {base!r}; use \"default\" (change single entries of the "
                            "default space) or \"none\" (the file is the whole space)")
    space = default_space(model) if base == "default" else {}
    space.update(data)
    return normalize_space(space, model, source=str(path))


# ------------------------------------------------------------------ checking


def _fail(source, name, why):
    where = f"space file {source}" if source else "search space"
    raise MnistlabError(f"{where}, entry {name!r}: {why}")


def _value(name, v, source):
    """One candidate value, type-checked and range-checked; returns it in canonical form."""
    kind, check, good = RULES[name]
    ok = False
    if kind == "int":
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif kind in ("float", "lr"):
        if kind == "lr" and v == "auto":
            return v
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        v = float(v) if ok else v
    elif kind == "bool":
        ok = isinstance(v, bool)
    elif kind == "str":
        ok = isinstance(v, str)
    elif kind == "ints":
        ok = isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v)
    if not ok or not check(v):
        _fail(source, name, f"{v!r} is not {good}")
    return v


def _entry(name, spec, source) -> dict:
    kind = RULES[name][0]
    if isinstance(spec, dict):
        extra = set(spec) - {"min", "max", "step", "sampling"}
        if extra or "min" not in spec or "max" not in spec:
            _fail(source, name, "a range is a table with min and max (and optionally step, sampling = "
                  f"\"linear\" or \"log\"); got keys {', '.join(sorted(spec)) or 'none'}")
        if kind not in ("int", "float", "lr"):
            _fail(source, name, f"a range needs numbers, but {name} is {RULES[name][2]}: list the choices instead")
        lo, hi = _value(name, spec["min"], source), _value(name, spec["max"], source)
        if "auto" in (lo, hi):
            _fail(source, name, "\"auto\" cannot be a range end: use lr = \"auto\" on its own")
        is_int = kind == "int"
        if kind != "int":
            lo, hi = float(lo), float(hi)
        if lo >= hi:
            _fail(source, name, f"empty range: min {lo!r} must be below max {hi!r}")
        sampling = spec.get("sampling", "linear")
        if sampling not in ("linear", "log"):
            _fail(source, name, f"sampling = {sampling!r}; use \"linear\" or \"log\"")
        if sampling == "log" and lo <= 0:
            _fail(source, name, f"log sampling needs min > 0, got {lo!r}")
        out = {"min": lo, "max": hi, "sampling": sampling}
        step = spec.get("step")
        if step is not None:
            if sampling == "log":
                _fail(source, name, "step cannot be combined with log sampling")
            if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0 or (is_int and not isinstance(step, int)):
                _fail(source, name, f"step must be a {'whole ' if is_int else ''}number > 0, got {step!r}")
            if step > hi - lo:
                _fail(source, name, f"step {step!r} is larger than the range {lo!r}..{hi!r}")
            out["step"] = step if is_int else float(step)
        return out
    is_choices = isinstance(spec, list) and (kind != "ints" or (spec and all(isinstance(s, list) for s in spec)))
    if is_choices:
        if not spec:
            _fail(source, name, "empty list of choices: give at least one value")
        values = [_value(name, v, source) for v in spec]
        if len({json.dumps(v) for v in values}) != len(values):
            _fail(source, name, f"repeated choices in {spec!r}")
        return {"choices": values} if len(values) > 1 else {"fixed": values[0]}
    return {"fixed": _value(name, spec, source)}


def normalize_space(space, model: str, source: str | None = None) -> dict:
    """Check `space` for `model`; return it in canonical form: name -> {"fixed": v} |
    {"choices": [...]} | {"min", "max", "sampling"[, "step"]}."""
    if model not in MODEL_OPTIONS:
        raise MnistlabError(f"unknown model {model!r}: choose one of {', '.join(MODEL_OPTIONS)}")
    if not isinstance(space, dict):
        raise MnistlabError(f"the search space must be a dict of entries, got {type(space).__name__}")
    names = known_names(model)
    out = {}
    for name, spec in space.items():
        if name not in names:
            _fail(source, name, f"unknown for the {model}; known names: {', '.join(names)}")
        if isinstance(spec, dict) and set(spec) == {"fixed"}:
            spec = spec["fixed"]
        elif isinstance(spec, dict) and set(spec) == {"choices"}:
            spec = spec["choices"]
        out[name] = _entry(name, spec, source)
    if "augment" in out and any(n in out for n in AUGMENT):
        _fail(source, "augment", f"augment scales rotation, zoom and shift together: drop it or drop "
              f"{', '.join(n for n in AUGMENT if n in out)}")
    if not any("fixed" not in e for e in out.values()):
        raise MnistlabError(f"{'space file ' + source if source else 'the search space'} searches nothing: "
                            "give at least one entry a list of choices or a min/max range")
    return out


# ------------------------------------------------------------------ Keras Tuner


def encode(name, value):
    """A value as Keras Tuner holds it (lists of filters as "16-32-64")."""
    return "-".join(str(i) for i in value) if RULES[name][0] == "ints" else value


def decode(name, value):
    if RULES[name][0] == "ints" and isinstance(value, str):
        return [int(i) for i in value.split("-")]
    if RULES[name][0] in ("float",) and isinstance(value, int):
        return float(value)
    return value


def hyperparameters(space: dict, extra_fixed: dict | None = None):
    """The Keras Tuner `HyperParameters` of a normalized space."""
    import keras_tuner as kt

    hp = kt.HyperParameters()
    for name, e in space.items():
        if "fixed" in e:
            hp.Fixed(name, encode(name, e["fixed"]))
        elif "choices" in e:
            values = [encode(name, v) for v in e["choices"]]
            if sorted(values, key=str) == [False, True]:
                hp.Boolean(name, default=values[0])
            else:
                hp.Choice(name, values)
        elif RULES[name][0] == "int":
            hp.Int(name, e["min"], e["max"], step=e.get("step", 1), sampling=e["sampling"])
        else:
            hp.Float(name, e["min"], e["max"], step=e.get("step"), sampling=e["sampling"])
    for name, value in (extra_fixed or {}).items():
        hp.Fixed(name, value)
    return hp


def searched(values: dict) -> dict:
    """A trial's hyperparameter values without Keras Tuner's and ours (`tuner/...`, `search/...`)."""
    return {k: decode(k, v) for k, v in values.items() if "/" not in k}


# ------------------------------------------------------------------ trials


def trial_config(definition: dict, values: dict):
    """The `TrainConfig` of a trial: the model's defaults, the search's settings,
    then the trial's values. Hyperband's `tuner/epochs` sets the epochs."""
    hps = searched(values)
    model = definition["model"]
    epochs = int(values.get("tuner/epochs", definition["epochs"]))
    base = make_config(model)
    patience = min(base.patience, max(2, definition["epochs"] // 3))
    train = {k: hps[k] for k in TRAIN_NAMES if k in hps}
    options = {k: v for k, v in hps.items() if k in MODEL_OPTIONS[model]}
    defaults = _model_defaults(model)
    if "augment" in hps:
        for name in AUGMENT:
            options[name] = round(defaults[name] * hps["augment"], 6)
    # values equal to the model's defaults are left out: config.json and the command show what differs
    options = {k: v for k, v in options.items() if not _same(v, defaults.get(k))}
    train.setdefault("patience", patience)
    return make_config(model, dataset=definition["dataset"], epochs=epochs, seed=definition["seed"],
                       train_limit=definition["train_limit"], model_options=options, **train)


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return type(a) is type(b) and a == b


def _model_defaults(model: str) -> dict:
    from mnistlab.models import CNN_DEFAULTS, MLP_DEFAULTS

    return {**(MLP_DEFAULTS if model == "mlp" else CNN_DEFAULTS), **make_config(model).model_options}


def train_command(config, backend: str | None = None, data_dir=None, run_dir="runs/best-trial") -> str:
    """The `mnistlab train ...` line whose config equals `config`."""
    base = make_config(config.model)
    args = ["mnistlab", "train"] + (["--backend", backend] if backend else []) + ["--model", config.model]
    mine, theirs = config.to_dict(), base.to_dict()
    for name in TRAIN_FLAGS:
        if mine[name] != theirs[name]:
            args += _flag(name, mine[name])
    for name in ARCH_FLAGS:
        value = mine["model_options"].get(name)
        if value is not None and value != theirs["model_options"].get(name, _model_defaults(config.model).get(name)):
            args += _flag(name, value)
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    args += ["--run-dir", str(run_dir)]
    return " ".join(args)


def _flag(name, value) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + name.replace("_", "-")] if name == "batch_norm" else ([flag] if value else [])
    if isinstance(value, (list, tuple)):
        return [flag, *map(str, value)]
    return [flag, repr(value) if isinstance(value, float) else str(value)]


def fingerprint(definition: dict) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]
