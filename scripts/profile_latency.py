#!/usr/bin/env python
"""``hcnet profile-latency``, under its historical name (``hcnet profile-latency --help`` for options)."""
import sys

from hcnet.cli import run

if __name__ == '__main__':
    sys.exit(run('profile-latency'))
