"""`python -m farm_agent` is `farm-agent`."""

import sys

from farm_agent.cli import main

sys.exit(main())
