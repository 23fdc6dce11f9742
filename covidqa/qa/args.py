"""Training arguments of the reader (:class:`QATrainArgs`): HappyTransformer's ``QATrainArgs`` keys and defaults plus
the reader's own, checked when built; a bad key, type or value raises :class:`QATrainArgsError` naming the key.

Input: ``None`` (defaults), a ``QATrainArgs`` or a dict of its keys (:meth:`QATrainArgs.from_any`); output: a checked
``QATrainArgs`` (``to_dict()`` for JSON).

Example::

    args = QATrainArgs.from_any({'num_train_epochs': 2, 'learning_rate': 2e-4})
    args.batch_size                          # 16
    QATrainArgs.from_any({'lr': 1})          # QATrainArgsError: unknown training argument(s) ['lr']; known: [...]
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Dict, Mapping, Optional, Type, Union

from pydantic import model_validator

from covidqa.options import Options, OptionsError, flag, integer, number, path

__all__ = ['QATrainArgs', 'QATrainArgsError']


class QATrainArgsError(OptionsError):
    """Bad training arguments; the message names the key."""


class QATrainArgs(Options):
    """Training arguments: HappyTransformer's ``QATrainArgs`` keys and defaults, plus the reader's own.

    HappyTransformer keys: ``learning_rate``, ``weight_decay``, ``adam_beta1``, ``adam_beta2``, ``adam_epsilon``,
    ``max_grad_norm``, ``num_train_epochs`` (a float: 1.5 = one and a half passes).

    Our keys:

    - ``batch_size``: windows per optimiser step;
    - ``max_seq_length``/``doc_stride``/``max_query_length``: training windows (tokens; stride = overlap);
    - ``negatives_per_question``: windows without the answer kept per question (labelled ``[CLS]``);
    - ``warmup_ratio``: share of the steps with a linearly rising learning rate (then linear decay to 0);
    - ``seed``; ``bf16``: bfloat16 autocast on CPU (faster on CPUs with AVX512-BF16/AMX);
    - ``max_train_seconds``: wall-clock budget; the schedule follows the clock and training stops on time;
    - ``max_positives_per_question``: windows holding the answer kept per question (0 = all of them; a long
      article with a large ``doc_stride`` has several);
    - ``freeze_layers``: keep the embeddings and the lowest N transformer layers fixed (0 = train everything):
      no backward pass through them, so each step is cheaper;
    - ``question_word_type``: give context tokens that repeat a question word their own token type (a third row
      in the token-type embeddings, trained even when the embeddings are frozen; :mod:`covidqa.text.question_match`);
      the saved model keeps ``type_vocab_size=3`` and readers mark question words for it from then on;
    - ``shared_norm_weight``: weight of a loss normalising start/end logits over all windows of the same question
      together (:class:`covidqa.training.losses.shared_norm.SharedNormLoss`; a question's windows then share a
      batch), so that spans compare across the windows of a long context; 0 = off;
    - ``output_dir``: where :meth:`covidqa.qa.api.QuestionAnswering.train` saves the model when done (atomically;
      None: no save);
    - ``checkpoint_dir``: save a resumable checkpoint there every ``checkpoint_minutes`` (and when stopped by
      Ctrl-C); training with a checkpoint there continues from it: the same batches, learning-rate schedule and
      time budget as if it had never stopped (:mod:`covidqa.training.checkpoint`; None: no checkpoints).

    Example: ``QATrainArgs.from_any({'num_train_epochs': 2, 'learning_rate': 2e-4})``
    """

    noun: ClassVar[str] = 'training argument'
    error: ClassVar[Type[OptionsError]] = QATrainArgsError

    learning_rate: Annotated[float, number(0.0, 1.0, 'peak learning rate', exclusive_minimum=True)] = 5e-5
    weight_decay: Annotated[float, number(0.0, 1.0, 'AdamW weight decay')] = 0.0
    adam_beta1: Annotated[float, number(0.0, 1.0, 'AdamW beta1 (< 1)')] = 0.9
    adam_beta2: Annotated[float, number(0.0, 1.0, 'AdamW beta2 (< 1)')] = 0.999
    adam_epsilon: Annotated[float, number(0.0, 1.0, 'AdamW epsilon', exclusive_minimum=True)] = 1e-8
    max_grad_norm: Annotated[float, number(0.0, 1e6, 'gradient clipping norm', exclusive_minimum=True)] = 1.0
    num_train_epochs: Annotated[float, number(0.0, 1e4, 'passes over the data (1.5 = one and a half)',
                                              exclusive_minimum=True)] = 3.0
    batch_size: Annotated[int, integer(1, 4096, 'windows per optimiser step')] = 16
    max_seq_length: Annotated[int, integer(32, 512, 'training window length, in tokens')] = 256
    doc_stride: Annotated[int, integer(0, 512, 'overlap of training windows, in tokens')] = 128
    max_query_length: Annotated[int, integer(4, 512, 'questions are cut to this many tokens')] = 64
    negatives_per_question: Annotated[int, integer(0, 10_000, 'windows without the answer kept per question')] = 1
    warmup_ratio: Annotated[float, number(0.0, 1.0, 'share of the steps with a rising learning rate')] = 0.1
    seed: Annotated[int, integer(0, 2**32 - 1, 'random seed')] = 42
    bf16: Annotated[bool, flag('bfloat16 autocast on CPU')] = False
    max_train_seconds: Annotated[Optional[float], number(0.0, 1e7, 'wall-clock budget (None: none)',
                                                         exclusive_minimum=True)] = None
    max_positives_per_question: Annotated[int, integer(0, 10_000, 'windows holding the answer kept per question '
                                                                  '(0 = all)')] = 0
    freeze_layers: Annotated[int, integer(0, 48, 'lowest transformer layers kept fixed')] = 0
    question_word_type: Annotated[bool, flag('mark context tokens that repeat a question word')] = False
    shared_norm_weight: Annotated[float, number(0.0, 1e4, "weight of the question-wide normalisation loss")] = 0.0
    output_dir: Annotated[Optional[str], path('where train() saves the model (None: no save)')] = None
    checkpoint_dir: Annotated[Optional[str], path('resumable checkpoints (None: none)')] = None
    checkpoint_minutes: Annotated[float, number(0.0, 1e5, 'minutes between checkpoints', exclusive_minimum=True)
                                  ] = 5.0

    @model_validator(mode='after')
    def _consistent(self) -> 'QATrainArgs':
        if self.adam_beta1 >= 1.0 or self.adam_beta2 >= 1.0:
            raise ValueError('training arguments adam_beta1/adam_beta2 must be < 1')
        if self.max_query_length + 8 >= self.max_seq_length:
            raise ValueError(f'training argument max_seq_length={self.max_seq_length} leaves no room for a context '
                             f'after max_query_length={self.max_query_length}')
        return self

    @classmethod
    def from_any(cls, args: Union[None, 'QATrainArgs', Mapping[str, Any]]) -> 'QATrainArgs':
        """``None`` -> defaults; a ``QATrainArgs`` as is; a dict -> checked (unknown keys raise, naming them)."""
        if args is None:
            return cls()
        if isinstance(args, cls):
            return args
        if not isinstance(args, Mapping):
            raise QATrainArgsError(f'training args must be a dict or QATrainArgs, got {type(args).__name__}')
        return cls(**dict(args))

    def to_dict(self) -> Dict[str, Any]:
        return self.model_dump()
