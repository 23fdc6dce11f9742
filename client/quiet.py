"""Keep imported libraries' warnings and log lines off a command-line user's screen.

``quiet_library_warnings()`` before jina is imported: jina imports ``hubble``, which imports ``pkg_resources``
(deprecated by setuptools; requirements.txt pins setuptools < 81, where it still exists), and the warning it raises
says nothing a user of this CLI can act on. Warnings of this project's own code are kept. ``quiet_jina_client()``
also keeps jina's client from logging a failed call as a boxed ERROR block: the CLI says what failed in one line.
"""
from __future__ import annotations

import os
import warnings

QUIETED = (
    r'pkg_resources is deprecated',
)


def quiet_library_warnings() -> None:
    """Ignore the library warnings in :data:`QUIETED` in this process (idempotent)."""
    for message in QUIETED:
        warnings.filterwarnings('ignore', message=message)


def quiet_jina_client() -> None:
    """jina's loggers in this process log only what is worse than an error (``$JINA_LOG_LEVEL`` wins if set)."""
    os.environ.setdefault('JINA_LOG_LEVEL', 'CRITICAL')
