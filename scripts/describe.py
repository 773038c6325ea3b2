#!/usr/bin/env python
"""``hcnet describe``, under its historical name (``hcnet describe --help`` for options)."""
import sys

from hcnet.cli import run

if __name__ == '__main__':
    sys.exit(run('describe'))
