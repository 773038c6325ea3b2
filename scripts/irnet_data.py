#!/usr/bin/env python
"""``hcnet irnet-data``: IR-Net's 56x56, 100-class ImageNet (``hcnet irnet-data --help``)."""
import sys

from hcnet.cli import run

if __name__ == '__main__':
    sys.exit(run('irnet-data'))
