"""Shim: the benchmarks moved to smpemu/study/bench/ (``smpemu bench``); ``python -m bench`` still works."""
