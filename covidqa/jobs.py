"""Every job the service runs in a child process, by name, in one place.

:func:`covidqa.runtime.child.run_in_child` and :func:`~covidqa.runtime.child.with_torch` take one of these names
and the child imports the function it names (so this registry imports nothing: a module on any floor can name a
job of a higher one). ``tests/unit/test_jobs.py`` checks that every entry resolves to a function and that the
product names no ``'module:function'`` target of its own. Example::

    run_in_child(TRAIN_READER, {...})          # covidqa.qa.api.train_reader_paths(**{...}) in a child
"""
from __future__ import annotations

from typing import Dict

TRAIN_READER = 'train-reader'      # /qa/train: the reader trained on documents or a file, saved as a version
FEEDBACK_ROUND = 'feedback-round'  # a feedback round: the embedder finetuned on labels, saved as a new version
UNPACK_MODEL = 'unpack-model'      # a shipped fp16 reader or embedder unpacked into a model folder (needs torch)
EXPORT_ONNX = 'export-onnx'        # an encoder or a reader exported to ONNX (fp32 / int8; needs torch)

JOBS: Dict[str, str] = {
    TRAIN_READER: 'covidqa.qa.api:train_reader_paths',
    FEEDBACK_ROUND: 'covidqa.feedback.rounds:train_round',
    UNPACK_MODEL: 'covidqa.models.packing:unpack_model_paths',
    EXPORT_ONNX: 'covidqa.models.onnx:export_paths',
}


def target_of(job: str) -> str:
    """The ``'module:function'`` a job name stands for; a ``'module:function'`` itself (a test's helper, a script's
    own function) is returned as it is. Raises ``KeyError`` naming the known jobs for any other name."""
    if ':' in job:
        return job
    try:
        return JOBS[job]
    except KeyError:
        raise KeyError(f'no child-process job {job!r}; the jobs are {sorted(JOBS)}') from None
