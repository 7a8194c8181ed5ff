"""The benchmarks (``smpemu bench``, ``python -m bench``), each against a
baseline measured in the same run.

Why it lives here, in the study layer: the whole-run benchmarks are small
sweeps (``smpemu.study.grid``) and the round-trip ones drive the harness
directly; inside the package they work from any directory, where a top-level
``bench/`` worked only from the repository root (that directory is now a
shim for ``python -m bench``).
"""
