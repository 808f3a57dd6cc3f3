"""``python -m mambaspike`` (also ``torchrun -m mambaspike``) runs the command line."""

import sys

from mambaspike.cli import main

sys.exit(main())
