#!/usr/bin/env python
"""``hcnet bench-latency``, under its historical name (``hcnet bench-latency --help`` for options)."""
import sys

from hcnet.cli import run

if __name__ == '__main__':
    sys.exit(run('bench-latency'))
