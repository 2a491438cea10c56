"""``python -m tfserving_double [flags]`` == ``tensorflow_model_server [flags]``."""

import sys

from .server import main

sys.exit(main())
