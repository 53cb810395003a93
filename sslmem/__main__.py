"""``python -m sslmem`` = the ``sslmem`` command."""

import sys

from sslmem.cli import main

sys.exit(main())
