"""Put this folder on sys.path so the functional tests share their helpers (``functional_testing``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
