#!/usr/bin/env python
"""``hcnet export``, under its historical name (``hcnet export --help`` for options)."""
import sys

from hcnet.cli import run

if __name__ == '__main__':
    sys.exit(run('export'))
