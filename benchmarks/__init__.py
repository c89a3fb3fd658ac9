"""mnistlab's benchmark scripts, grouped by goal (see benchmarks/README.md).

Run each from the repository root as a module, e.g.
`python -m benchmarks.speed.throughput --help`; scripts import each other and
the shared helpers in `benchmarks.common` by their full names.
"""
