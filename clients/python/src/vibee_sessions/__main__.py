"""``python -m vibee_sessions``: the same as the ``vibee-sessions-py`` command."""

import sys

from .cli import main

sys.exit(main())
