"""`python -m edgeadapt.cli ...` (what `torchrun -m edgeadapt.cli` runs)."""

import sys
import warnings

from edgeadapt.cli.main import main

if __name__ == "__main__":
    warnings.simplefilter("default")
    sys.exit(main())
