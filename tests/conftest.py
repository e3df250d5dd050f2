"""Shared fixtures: offline hub, quiet logs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))  # tests import factories.py

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"
