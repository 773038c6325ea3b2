#!/usr/bin/env python
"""``hcnet convert`` (``hcnet convert --help`` for options)."""
import sys

from hcnet.cli import run

if __name__ == '__main__':
    sys.exit(run('convert'))
