#!/usr/bin/env python
"""``hcnet publish``, under its historical name (``hcnet publish --help`` for options)."""
import sys

from hcnet.cli import run

if __name__ == '__main__':
    sys.exit(run('publish'))
