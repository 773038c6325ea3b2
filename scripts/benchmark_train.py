#!/usr/bin/env python
"""``hcnet bench-train``, under its historical name (``hcnet bench-train --help`` for options)."""
import sys

from hcnet.cli import run

if __name__ == '__main__':
    sys.exit(run('bench-train'))
