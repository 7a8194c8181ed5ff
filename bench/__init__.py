"""What of the benchmarks cannot live in the package, and why.

- ``python -m bench`` (``__main__``): the benchmarks are ``smpemu bench``
  (smpemu/study/bench/); this top-level name is the short way to run them
  from the repository root, and a module path outside the package cannot
  be inside it.
- ``python -m bench.check_speed``: ``smpemu check``'s explorer against the
  same steps without it.  It measures the search (smpemu/search), which
  smpemu/study (the benchmarks' layer) may not import.
"""
