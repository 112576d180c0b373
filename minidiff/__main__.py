"""``python -m minidiff``: the ``minidiff`` command (see :mod:`minidiff.cli`)."""

import sys

from .cli import main

sys.exit(main())
