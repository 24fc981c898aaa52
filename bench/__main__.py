"""``python -m bench [--quick | --fast] [--scenarios ...] [--systems ...] [--records N]``.

See ``bench/README.md`` and ``python -m bench --help``.
"""
import sys

from bench.suite import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
