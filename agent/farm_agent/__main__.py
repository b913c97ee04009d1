"""`python -m farm_agent` is `farm-agent`."""

import sys

from farm_agent.commands.cli import main

sys.exit(main())
