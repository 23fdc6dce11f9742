"""HappyTransformer-style extractive question answering: train, eval, test and answer with our own reader.

:class:`QuestionAnswering` wraps a BERT span model (``AutoModelForQuestionAnswering``): by default the reader
trained into :func:`covidqa.paths.default_reader_dir`, else the reader shipped in ``models/reader/``
(:mod:`covidqa.models.shipped`), else the packaged all-MiniLM-L6-v2 with a fresh span head. Results are
:class:`EvalResult`, :class:`QuestionAnsweringResult` (both from :mod:`covidqa.reader.scoring`, which scores
:meth:`~QuestionAnswering.eval` / ``test``) and :class:`TrainResult`.

Input files are HappyTransformer CSVs (``context, question, answer_text, answer_start``; test files only
``context, question``) or SQuAD JSON (nested or flat), read by :mod:`covidqa.data.records`. Training arguments are
:class:`~covidqa.qa.args.QATrainArgs` (HappyTransformer's keys and defaults plus the reader's own), the training
loop is :mod:`covidqa.qa.train`, the service's default recipe :mod:`covidqa.qa.recipe` and the command line
:mod:`covidqa.qa.cli`.

Example::

    qa = QuestionAnswering()                                   # trained reader, else the shipped one
    qa.train('train.csv', {'num_train_epochs': 2, 'learning_rate': 2e-4}, eval_filepath='dev.csv')
    print(qa.eval('dev.csv'))          # EvalResult(loss=1.9, exact_match=0.31, f1=0.62, count=191, ...)
    qa.test('test.csv')[0]             # QuestionAnsweringResult(answer='...', score=0.41, start=120, end=168)
    qa.answer_question('The virus spreads through droplets.', 'How does the virus spread?')
    qa.save('workspace/models/reader')

CLI (:mod:`covidqa.qa.cli`)::

    python -m covidqa.qa train TRAIN.csv [--eval DEV.csv] --output DIR [--args '{"num_train_epochs": 2}']
    python -m covidqa.qa eval DEV.csv [--model DIR]
    python -m covidqa.qa test TEST.csv [--model DIR] [--output predictions.csv]
    python -m covidqa.qa default [--force] [--epochs N] [--data-dir DIR]   # the service's default reader
    python -m covidqa.qa ship [--model DIR]                                # pack it into models/reader/
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np

from covidqa.data.records import QADataError, QARecord
from covidqa.models.loading import atomic_save_pretrained, load_qa_model, load_tokenizer
from covidqa.paths import PathLike
from covidqa.qa.args import QATrainArgs, QATrainArgsError
from covidqa.qa.train import TrainingData, train_span_model
from covidqa.reader.confidence import calibration_for
from covidqa.reader.options import ReadOptions
from covidqa.reader.reader import ExtractiveReader
from covidqa.reader.runners import TorchQARunner, resolve_reader_model
from covidqa.reader.scoring import EvalResult, Inputs, QuestionAnsweringResult, evaluate, predict, records_of

__all__ = [
    'QATrainArgs',
    'QATrainArgsError',
    'EvalResult',
    'TrainResult',
    'QuestionAnsweringResult',
    'QuestionAnswering',
    'TRAINING_META_FILE',
]

logger = logging.getLogger(__name__)
TRAINING_META_FILE = 'reader_training.json'
InputFiles = Inputs  # a file, several files, or QARecords


# ------------------------------------------------------------------------------------------------------ results
@dataclass
class TrainResult(TrainingData):
    """What :meth:`QuestionAnswering.train` did: its :class:`~covidqa.qa.train.TrainingData`, optimisation
    (steps, epochs completed, wall seconds, the loop's CPU seconds / threads (its wall time on an idle machine), mean loss of the first and last quarter of the steps, at most 20 each) and the optional evaluation."""

    steps: int
    epochs: float
    seconds: float
    first_loss: float
    final_loss: float
    stopped_by_time: bool = False
    cpu_equivalent_seconds: float = 0.0
    loss_history: List[float] = field(default_factory=list)
    eval: Optional[EvalResult] = None


# ---------------------------------------------------------------------------------------------------- main class
class QuestionAnswering:
    """HappyTransformer-style QA model: :meth:`train`, :meth:`eval`, :meth:`test`, :meth:`answer_question`,
    :meth:`save`.

    :param model: a model directory, ``'base'`` (packaged all-MiniLM-L6-v2 + fresh span head) or ``None`` (the
        trained default reader when present, else base with a warning).
    :param num_threads: torch intra-op threads (None: torch's default).
    :param settings: reading settings for eval/test/answer_question (:class:`~covidqa.reader.options.ReadOptions`:
        ``max_seq_length``, ``doc_stride``, ``max_answer_length``, ``lexical_weight``, ...); here ``batch_size``
        defaults to 32 windows and the reader always answers (``no_answer_threshold`` and ``confidence_threshold`` 0).

    Scores: a calibrated reader's (the shipped one, :func:`covidqa.reader.confidence.calibration_for`) are the
    probability that the answer is right until :meth:`train` changes the model; then its span scores.
    """

    def __init__(self, model: Optional[PathLike] = None, *, num_threads: Optional[int] = None, **settings: Any):
        import torch

        if num_threads:
            torch.set_num_threads(num_threads)
        self.model_path = resolve_reader_model(model)
        self.tokenizer = load_tokenizer(self.model_path)
        self.model = load_qa_model(self.model_path)
        self.last_train: Optional[TrainResult] = None
        self.last_train_args: Optional[QATrainArgs] = None
        self._reader = ExtractiveReader(
            model=self.model_path, runner=TorchQARunner(self.model), calibrator=calibration_for(self.model_path),
            options=ReadOptions(top_k=1, no_answer_threshold=0.0, confidence_threshold=0.0,
                                batch_size=32).with_overrides(settings))

    @property
    def reader(self) -> ExtractiveReader:
        """The :class:`ExtractiveReader` over the in-memory model (always answers: threshold 0)."""
        return self._reader


    # ------------------------------------------------------------------------------------------------ training
    def train(self, input_filepath: InputFiles, args: Union[None, QATrainArgs, Mapping[str, Any]] = None,
              eval_filepath: Optional[InputFiles] = None) -> TrainResult:
        """Fine-tune the span model in place on a labelled CSV / SQuAD JSON file (or several, or QARecords).

        :param input_filepath: training data (every record needs an answer).
        :param args: ``QATrainArgs`` or a dict of its keys (unknown keys / wrong types raise
            :class:`QATrainArgsError` naming the key).
        :param eval_filepath: optional labelled data evaluated after training (see :meth:`eval`).
        :returns: :class:`TrainResult`. With ``args.output_dir`` the model is also saved there atomically.

        Example: ``qa.train('train.csv', {'num_train_epochs': 1})``
        """
        args = QATrainArgs.from_any(args)
        records = records_of(input_filepath, require_answers=True)
        if not records:
            raise QADataError(f'{input_filepath}: no training records')
        started = time.perf_counter()
        self._reader.calibrator = None  # it belongs to the weights this training changes
        run = train_span_model(self.model, self.tokenizer, records, args, start_model=str(self.model_path))
        losses = run.losses
        edge = max(1, min(20, len(losses) // 4))
        result = TrainResult(
            records=run.records, skipped_records=run.skipped_records, windows=run.windows,
            positive_windows=run.positive_windows, negative_windows=run.negative_windows,
            steps=run.steps, epochs=run.steps / run.steps_per_epoch, seconds=time.perf_counter() - started,
            first_loss=float(np.mean(losses[:edge])) if losses else float('nan'),
            final_loss=float(np.mean(losses[-edge:])) if losses else float('nan'),
            stopped_by_time=run.stopped_by_time, loss_history=run.history,
            cpu_equivalent_seconds=run.cpu_equivalent_seconds,
        )
        self.last_train, self.last_train_args = result, args
        if eval_filepath is not None:
            result.eval = self.eval(eval_filepath)
        if args.output_dir:
            self.save(args.output_dir)
        return result

    # ------------------------------------------------------------------------------------------------- evaluation
    def eval(self, input_filepath: InputFiles) -> EvalResult:
        """Loss, SQuAD exact match and F1 of the top answer on a labelled CSV / SQuAD JSON file (or several files,
        or QARecords), scored by :func:`covidqa.reader.scoring.evaluate` with :attr:`reader`.

        Long contexts are windowed (``max_seq_length``/``doc_stride`` of this object) and the best span over all
        windows is the prediction. Returns :class:`EvalResult`.

        Example: ``qa.eval('dev.csv').f1`` -> ``0.71``
        """
        records = records_of(input_filepath, require_answers=True)
        if not records:
            raise QADataError(f'{input_filepath}: no records to evaluate')
        return evaluate(self._reader, records)

    def test(self, input_filepath: InputFiles) -> List[QuestionAnsweringResult]:
        """The best answer for every record of a CSV / SQuAD JSON file (answers not needed), in file order
        (:func:`covidqa.reader.scoring.predict` with :attr:`reader`).

        Example: ``[r.answer for r in qa.test('test.csv')]``
        """
        return predict(self._reader, records_of(input_filepath, require_answers=False))

    def answer_question(self, context: str, question: str, top_k: int = 1,
                        overlap_threshold: float = 1.0) -> List[QuestionAnsweringResult]:
        """The ``top_k`` best answers to ``question`` in ``context`` (any length), best first.

        ``overlap_threshold`` 1.0 (the default) returns ``top_k`` spans even when they overlap, as HappyTransformer's
        ``answer_question`` does; a lower value drops spans that share more than that fraction of their own characters,
        or of the better answer's, with a better answer (the Flow's ``/answer`` uses 0.01, as haystack). Only this method
        defaults to 1.0: :attr:`reader` itself (an :class:`ExtractiveReader`) keeps its own default, 0.01.

        Example: ``qa.answer_question('Masks reduce spread.', 'What reduces spread?')[0].answer`` -> ``'Masks'``
        """
        if not isinstance(context, str) or not context.strip():
            raise ValueError('context must be a non-empty string')
        answers = self._reader.read([question], [[context]], top_k=top_k, no_answer_threshold=0.0,
                                    overlap_threshold=overlap_threshold).answers[0]
        return [QuestionAnsweringResult(a.answer, a.score, a.start, a.end) for a in answers]

    # ------------------------------------------------------------------------------------------------------- save
    def save(self, path: PathLike, meta: Optional[Mapping[str, Any]] = None) -> Path:
        """Save model + tokenizer (save_pretrained format) to ``path`` atomically; a crash mid-save never
        leaves a broken model there. Training arguments and results go to ``reader_training.json``."""
        info: Dict[str, Any] = {'base_model': str(self.model_path), 'saved_at': time.strftime('%Y-%m-%dT%H:%M:%S')}
        if self.last_train_args is not None:
            info['args'] = self.last_train_args.to_dict()
        if self.last_train is not None:
            info['train'] = dataclasses.asdict(self.last_train)
        info.update(meta or {})
        return atomic_save_pretrained(self.model, self.tokenizer, path,
                                      {TRAINING_META_FILE: json.dumps(info, indent=2, default=str)})



def train_reader_paths(start: str, records: List[dict], args: Dict[str, Any], model_dir: str,
                       **settings: Any) -> Dict[str, Any]:
    """The reader Executor's ``/qa/train`` work, run in a child process (:func:`covidqa.runtime.child.run_in_child`) that
    exits when done, so that torch and the training's memory never stay in the serving process: train from
    ``start`` (a model directory or ``'base'``) on ``records`` (:class:`QARecord` fields as dicts) with ``args``
    (:class:`QATrainArgs` keys), save atomically to ``model_dir``. Returns the :class:`TrainResult` as a dict
    without its ``loss_history``. ``settings``: the reading settings of the evaluation after training."""
    qa = QuestionAnswering(start, **settings)
    result = qa.train([QARecord(**{**r, 'gold_answers': tuple(r.get('gold_answers') or ())}) for r in records],
                      args)
    qa.save(model_dir)
    summary = dataclasses.asdict(result)
    summary.pop('loss_history', None)
    return summary
