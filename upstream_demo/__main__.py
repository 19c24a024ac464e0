"""``python -m upstream_demo`` starts the demo upstream."""

import sys

from upstream_demo.app import main

sys.exit(main())
