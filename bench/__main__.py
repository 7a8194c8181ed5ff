"""``python -m bench``: a shim for ``smpemu bench`` (the code is smpemu/study/bench/)."""

import sys

from smpemu.study.bench.main import main

if __name__ == "__main__":
    sys.exit(main())
