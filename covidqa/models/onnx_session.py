"""ONNX Runtime sessions on exported graphs: how they run, and whether a file is the graph a kind promises.

:func:`make_session` opens a CPU ``InferenceSession`` with all graph optimisations (``ORT_ENABLE_ALL``),
``num_threads`` intra-op threads (``None``/0: ONNX Runtime's default, one per physical core), one inter-op thread,
and idle worker threads that sleep instead of spinning: several Executors share few cores, and spinning threads
steal them from each other. :func:`check_graph` raises ``ValueError`` when a session's inputs/outputs are not those
of :data:`covidqa.models.onnx_export.INPUTS` / ``OUTPUTS`` for its kind.

Example::

    session = make_session('workspace/models/reader/onnx/qa.onnx', num_threads=2)
    check_graph(session, 'qa')
"""
from __future__ import annotations

from typing import Optional

from covidqa.models.onnx_export import INPUTS, OUTPUTS
from covidqa.paths import PathLike

__all__ = ['check_graph', 'make_session']


def make_session(path: PathLike, num_threads: Optional[int] = None):
    """A CPU ``InferenceSession`` on the ``.onnx`` file ``path`` (see the module docstring). Raises ``ValueError``
    for a ``num_threads`` that is not ``None`` or an integer >= 0, and ONNX Runtime's errors for an unreadable file."""
    import onnxruntime as ort

    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 0):
        raise ValueError(f'num_threads must be None or an integer >= 0, got {num_threads!r}')
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = num_threads or 0
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(str(path), sess_options=options, providers=['CPUExecutionProvider'])


def check_graph(session, kind: str) -> None:
    """Raise ``ValueError`` unless ``session``'s input and output names are those of ``kind``."""
    names = tuple(i.name for i in session.get_inputs())
    outs = tuple(o.name for o in session.get_outputs())
    if names != INPUTS[kind] or outs != OUTPUTS[kind]:
        raise ValueError(f'exported graph has inputs {names} / outputs {outs}, expected {INPUTS[kind]} / '
                         f'{OUTPUTS[kind]}')
