"""``python -m smpemu.study.bench``: the same as ``smpemu bench``."""

import sys

from smpemu.study.bench.main import main

if __name__ == "__main__":
    sys.exit(main())
