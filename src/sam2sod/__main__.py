"""`python -m sam2sod`: the `sam2sod` command line."""

import sys

from sam2sod.cli import main

sys.exit(main())
