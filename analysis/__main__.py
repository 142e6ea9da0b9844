"""`python -m analysis`: the MLproject entry point `analysis` under the package's own name.

The command line lives with the other entry points (entrypoints/analysis.py, which reads through
this package); this hands over to it as a new program rather than importing it, so that
analysis/ never depends on entrypoints/.
"""

import os
import sys

os.execv(sys.executable, [sys.executable, "-m", "entrypoints.analysis", *sys.argv[1:]])
