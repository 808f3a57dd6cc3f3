"""``python -m mambaspike`` (also ``torchrun -m mambaspike``) runs the command line."""

import sys

from .cli import main

sys.exit(main())
