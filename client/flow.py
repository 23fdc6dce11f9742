"""``python -m client.flow --uses flow.yml [jina flow options]``: ``jina flow`` with torch kept out of the Flow.

It blocks torch (:func:`covidqa.runtime.torch_gate.block_torch`) before jina is imported, then runs ``jina flow`` with the
given arguments; the Executor processes, forked from this one, serve without torch (~180 MB less private memory
each). A Flow that asks for ``backend: torch`` in some Executor's ``uses_with`` gets torch (:func:`wants_torch`),
as does any Flow with ``COVIDQA_TORCH=1``. ``make serve``, the tests and the benchmarks start the Flow this way
(:class:`client.flowctl.FlowProcess`); ``jina flow --uses flow.yml`` works too, with torch loaded.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional


def wants_torch(argv: List[str]) -> bool:
    """Whether the Flow YAML named by ``--uses`` in ``argv`` gives some Executor ``backend: torch`` (unreadable or
    no ``--uses``: False)."""
    import yaml

    if '--uses' not in argv or argv.index('--uses') + 1 >= len(argv):
        return False
    try:
        config = yaml.safe_load(Path(argv[argv.index('--uses') + 1]).read_text())
    except (OSError, yaml.YAMLError):
        return False
    executors = (config or {}).get('executors') or []
    return any(str((e.get('uses_with') or {}).get('backend', '')) == 'torch' for e in executors if isinstance(e, dict))


def main(argv: Optional[List[str]] = None) -> int:
    from covidqa.runtime.torch_gate import block_torch

    args = list(sys.argv[1:] if argv is None else argv)
    if not wants_torch(args):
        block_torch()
    sys.argv = ['jina', 'flow', *args]
    from jina_cli import main as jina_main

    jina_main()
    return 0


if __name__ == '__main__':
    sys.exit(main())
