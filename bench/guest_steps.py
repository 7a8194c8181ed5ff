"""Shim: moved to smpemu/study/bench/guest_steps.py."""

from smpemu.study.bench.guest_steps import *  # noqa: F401,F403
