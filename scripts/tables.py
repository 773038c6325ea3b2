#!/usr/bin/env python
"""``hcnet tables``, rewriting the checkout's MODEL_ZOO.md unless ``--zoo`` / ``--no-zoo``."""
import os
import sys

from hcnet.commands.tables import main

if __name__ == '__main__':
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main(default_zoo=os.path.join(here, 'MODEL_ZOO.md')))
