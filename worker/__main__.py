"""``python -m worker`` is ``cable-ingest``."""

import sys

from .cli import main

sys.exit(main())
