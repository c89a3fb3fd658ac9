"""Helpers the benchmark scripts share: fresh processes, command-line options, FLOP counts, paths."""
