"""``python -m sitewarden``: the same as the ``sitewarden`` command."""

import sys

from sitewarden.cli import main

sys.exit(main())
