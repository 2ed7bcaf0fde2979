"""What the tests share besides fixtures (tests/conftest.py): samples, real servers and
processes (harness), the stock clients (stock), the eager PyTorch reference (reference)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
