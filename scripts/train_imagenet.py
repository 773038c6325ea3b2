#!/usr/bin/env python
"""``hcnet train``, under its historical name (``hcnet train --help`` for options)."""
import sys

from hcnet.cli import run

if __name__ == '__main__':
    sys.exit(run('train'))
