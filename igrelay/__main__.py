"""``python -m igrelay`` runs the ``igrelay`` command."""

import sys

from igrelay.cli import main

sys.exit(main())
