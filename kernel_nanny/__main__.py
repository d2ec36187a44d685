"""``python -m kernel_nanny`` runs the ``kernel-nanny`` command."""

import sys

from .cli import main

sys.exit(main())
