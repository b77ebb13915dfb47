"""``python -m taller`` is the ``taller`` command."""

import sys

from taller.cli import main

sys.exit(main())
