"""``python -m gains`` = the ``gains`` command."""

import sys

from gains.cli import main

sys.exit(main())
