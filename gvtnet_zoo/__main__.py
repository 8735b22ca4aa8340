"""``python -m gvtnet_zoo`` (how torchrun launches it) is the ``gvtnet-zoo`` command."""

import sys

from .cli import main

sys.exit(main())
