"""Put this folder on sys.path so the ops tests share their input builders (``ops_testing``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
