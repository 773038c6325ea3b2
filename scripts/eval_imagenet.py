#!/usr/bin/env python
"""``hcnet eval``, under its historical name (``hcnet eval --help`` for options)."""
import sys

from hcnet.cli import run

if __name__ == '__main__':
    sys.exit(run('eval'))
