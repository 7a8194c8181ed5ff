"""Shim: moved to smpemu/study/bench/runs.py."""

from smpemu.study.bench.runs import *  # noqa: F401,F403
