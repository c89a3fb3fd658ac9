"""Hyperparameter search with Keras Tuner: every trial a real mnistlab run.

    >>> import mnistlab
    >>> from mnistlab.tuning import default_space
    >>> space = default_space("mlp")          # a plain dict: edit it
    >>> space["lr"] = "auto"                  # each trial runs the LR range test
    >>> results = mnistlab.tune(space, "runs/search", max_trials=20, workers=2)
    >>> results["best"]["test_accuracy"], results["best"]["command"]

The search runs on Keras Tuner's own distributed engine: a chief (the oracle,
a gRPC server) and workers, here on one machine, or across machines with
`mnistlab tune --chief` / `--join`. See docs/tuning.md.

Read `search.py` first. Then `space` (the search space: defaults, files,
checks), `oracle` (Keras Tuner's oracle made safe to kill, and its server),
`worker` (trials through `train()`), `lease` (the chief's side of a worker's hold on its
trial, so a lost machine's trial goes to another), `worker_link` (the worker's
side: its client, heartbeat and checks), `results` (JSON, CSV, figure, the best
trial's test accuracy), `hparams` (TensorBoard's HParams dashboard without
TensorFlow). The search's section in `mnistlab evaluate`'s report is
`mnistlab.evaluation.search_section`.
"""

from __future__ import annotations

from mnistlab.tuning.space import default_space, load_space_file, normalize_space


def tune(space=None, run_dir="runs/search", model: str = "mlp", dataset: str = "mnist", tuner: str = "bayesian",
         max_trials: int = 10, workers: int = 1, epochs: int = 10, train_limit: int | None = None,
         data_dir=None, seed: int = 0, host: str = "127.0.0.1", verbose: int = 1) -> dict:
    """Search `space` (a dict like `default_space(model)`, a TOML/JSON file, or None for the
    default) with `workers` worker processes; returns the results (`RUN/tune_results.json`).

    Running it again on the same `run_dir` continues an interrupted search; a
    finished one is returned as it is (`results["already_finished"]`). A
    `run_dir` of another search raises `MnistlabError`.
    """
    from mnistlab.tuning.search import make_definition, search

    definition = make_definition(space, model=model, dataset=dataset, tuner=tuner, max_trials=max_trials,
                                 epochs=epochs, train_limit=train_limit, seed=seed)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        from mnistlab.errors import MnistlabError

        raise MnistlabError(f"workers must be a whole number >= 1, got {workers!r}")
    return search(definition, run_dir, workers=workers, data_dir=data_dir, host=host, verbose=verbose)


__all__ = ["tune", "default_space", "load_space_file", "normalize_space"]
