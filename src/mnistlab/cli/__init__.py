"""The command line: a thin layer over the Python API.

Read `main.py` first: it parses the arguments, picks the backend and calls
`mnistlab.configure()` before Keras is imported. Each subcommand is a module
here (`train.py`, `lr_find.py`, `tune.py`, `evaluate.py`, `predict.py`,
`serve.py`, `ensemble.py`) with `add_arguments(parser)` and `run(args) -> int`.
"""
