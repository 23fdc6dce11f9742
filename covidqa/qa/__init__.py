"""HappyTransformer-style question answering (:mod:`.api`: ``QuestionAnswering`` with ``train`` / ``eval`` / ``test``),
its training arguments (:mod:`.args`) and loop (:mod:`.train`), the service's reader recipe (:mod:`.recipe`,
:mod:`.pretrain`) and the command line (``python -m covidqa.qa``, :mod:`.cli`).

Example::

    from covidqa.qa import QuestionAnswering
    qa = QuestionAnswering()
    qa.eval('dev.csv')       # EvalResult(loss=..., exact_match=..., f1=...)
"""
from covidqa.qa.api import (
    TRAINING_META_FILE,
    EvalResult,
    QATrainArgs,
    QATrainArgsError,
    QuestionAnswering,
    QuestionAnsweringResult,
    TrainResult,
)

__all__ = ['QATrainArgs', 'QATrainArgsError', 'EvalResult', 'TrainResult', 'QuestionAnsweringResult',
           'QuestionAnswering', 'TRAINING_META_FILE']
