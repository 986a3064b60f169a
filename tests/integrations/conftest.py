"""Put this folder on sys.path so the TRL tests share their local stand-ins (``trl_testing``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
