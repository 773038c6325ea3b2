"""``python -m hcnet``: the ``hcnet`` command."""
import sys

from .cli import main

sys.exit(main())
