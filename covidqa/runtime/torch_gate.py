"""Keep torch out of the processes that serve with ONNX Runtime.

Importing jina imports docarray, and docarray tries ``import torch`` at import time when torch is installed
(``docarray/utils/_internal/misc.py``): every Flow process paid ~180 MB of private memory and seconds of start-up
for a library it never used. A Flow's Executor processes are forked from the ``jina flow`` process (Python's default
start method on Linux, which jina keeps unless ``JINA_MP_START_METHOD`` says otherwise), so what that process
imported, each child has: the block must happen there, before jina is imported. ``python -m client.flow`` (what
``make serve``, the tests and the benchmarks start) calls :func:`block_torch` and then runs ``jina flow``; plain
``jina flow --uses flow.yml`` still works, with torch loaded.

The block is ``sys.modules['torch'] = None``: ``import torch`` then raises ``ImportError`` and
``importlib.util.find_spec('torch')`` answers ``None``, so docarray (``NdArray`` is numpy) and transformers (the
tokenizers) carry on without it. Work that needs torch runs in a child process, a fresh interpreter without the
block (:mod:`covidqa.runtime.child`): feedback training rounds, ``/qa/train``, ONNX exports, unpacking a shipped model.
A torch backend in a blocked process fails with :func:`require_torch`'s message naming the fix.

``COVIDQA_TORCH=1`` in the environment lets torch in; so does a Flow YAML with ``backend: torch``
(:func:`client.flow.wants_torch`).
"""
from __future__ import annotations

import os
import sys

ENV = 'COVIDQA_TORCH'


def torch_allowed_by_env() -> bool:
    """``$COVIDQA_TORCH`` is ``1``: the launcher leaves torch importable."""
    return os.environ.get(ENV, '').strip() == '1'


def block_torch() -> bool:
    """Make ``import torch`` fail in this process (unless ``$COVIDQA_TORCH=1``); returns whether it is blocked.
    Call it before anything imports jina or docarray; raises ``RuntimeError`` when torch is imported already."""
    if torch_allowed_by_env():
        return False
    if sys.modules.get('torch') is not None:
        raise RuntimeError('torch is imported already: block_torch() must run before jina/docarray are imported')
    sys.modules['torch'] = None  # type: ignore[assignment]
    return True


def torch_blocked() -> bool:
    """Whether this process runs with torch blocked (:func:`block_torch`)."""
    return 'torch' in sys.modules and sys.modules['torch'] is None


def require_torch(what: str) -> None:
    """Raise ``RuntimeError`` naming ``what`` and the fix when torch is blocked in this process."""
    if torch_blocked():
        raise RuntimeError(f'{what} needs torch, and this Flow keeps torch out of its processes (python -m '
                           f'client.flow): use an ONNX backend (onnx, onnx-int8), set backend: torch in flow.yml, '
                           f'or start it with {ENV}=1')


__all__ = ['ENV', 'block_torch', 'torch_blocked', 'require_torch', 'torch_allowed_by_env']
