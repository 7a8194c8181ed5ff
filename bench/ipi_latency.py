"""Shim: moved to smpemu/study/bench/ipi_latency.py."""

import sys

from smpemu.study.bench.ipi_latency import *  # noqa: F401,F403
from smpemu.study.bench.ipi_latency import main as _main  # noqa: F401

if __name__ == "__main__":
    _main()
    sys.exit(0)
