"""Helpers shared by the test modules (imported as ``from conftest import ...``).

The example's modules (``examples/``) are importable from every test: they are
a program, not a package, and import each other by their file names.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a local process group or torchrun)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
