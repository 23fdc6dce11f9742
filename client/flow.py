"""``python -m client.flow --uses flow.yml [jina flow options]``: ``jina flow`` with torch kept out of the Flow.

It blocks torch (:func:`covidqa.torch_gate.block_torch`) before jina is imported, then runs ``jina flow`` with the
given arguments; the Executor processes, forked from this one, serve without torch (~180 MB less private memory
each). ``COVIDQA_TORCH=1`` lets torch in (``backend: torch``). ``make serve``, the tests and the benchmarks start
the Flow this way (:class:`client.flowctl.FlowProcess`); ``jina flow --uses flow.yml`` works too, with torch loaded.
"""
from __future__ import annotations

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from covidqa.torch_gate import block_torch

    block_torch()
    sys.argv = ['jina', 'flow', *(sys.argv[1:] if argv is None else argv)]
    from jina_cli import main as jina_main

    jina_main()
    return 0


if __name__ == '__main__':
    sys.exit(main())
