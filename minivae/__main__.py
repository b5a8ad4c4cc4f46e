"""``python -m minivae``: the command line, as the ``minivae`` script runs it (for an environment whose scripts
folder is not on PATH)."""
import sys

from minivae.cli import main

sys.exit(main())
