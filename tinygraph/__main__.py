"""``python -m tinygraph``: the command line (see tinygraph.cli)."""
import sys

from .cli import main

sys.exit(main())
