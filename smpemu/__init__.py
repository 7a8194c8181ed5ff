"""smpemu: real-parallelism emulator of SMP TLB-flush IPIs (see README.md)."""

__version__ = "0.1.0"
