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

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Union

__all__ = ['QATrainArgs', 'QATrainArgsError']


class QATrainArgsError(ValueError):
    """Bad training arguments; the message names the key."""


@dataclass
class QATrainArgs:
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

    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    num_train_epochs: float = 3.0
    batch_size: int = 16
    max_seq_length: int = 256
    doc_stride: int = 128
    max_query_length: int = 64
    negatives_per_question: int = 1
    warmup_ratio: float = 0.1
    seed: int = 42
    bf16: bool = False
    max_train_seconds: Optional[float] = None
    max_positives_per_question: int = 0
    freeze_layers: int = 0
    question_word_type: bool = False
    shared_norm_weight: float = 0.0
    output_dir: Optional[str] = None
    checkpoint_dir: Optional[str] = None
    checkpoint_minutes: float = 5.0

    # (key, minimum, maximum, minimum inclusive)
    _RANGES = {
        'learning_rate': (0.0, 1.0, False),
        'weight_decay': (0.0, 1.0, True),
        'adam_beta1': (0.0, 1.0, True),
        'adam_beta2': (0.0, 1.0, True),
        'adam_epsilon': (0.0, 1.0, False),
        'max_grad_norm': (0.0, 1e6, False),
        'num_train_epochs': (0.0, 1e4, False),
        'batch_size': (1, 4096, True),
        'max_seq_length': (32, 512, True),
        'doc_stride': (0, 512, True),
        'max_query_length': (4, 512, True),
        'negatives_per_question': (0, 10_000, True),
        'warmup_ratio': (0.0, 1.0, True),
        'seed': (0, 2**32 - 1, True),
        'max_train_seconds': (0.0, 1e7, False),
        'max_positives_per_question': (0, 10_000, True),
        'freeze_layers': (0, 48, True),
        'shared_norm_weight': (0.0, 1e4, True),
        'checkpoint_minutes': (0.0, 1e5, False),
    }

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = _FIELD_KINDS[f.name]
            if value is None and f.name in ('max_train_seconds', 'output_dir', 'checkpoint_dir'):
                continue
            if kind is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise QATrainArgsError(f'training argument {f.name!r} must be a number, got {value!r}')
                value = float(value)
            elif kind is int:
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if isinstance(value, bool) or not isinstance(value, int):
                    raise QATrainArgsError(f'training argument {f.name!r} must be an integer, got {value!r}')
            elif kind is bool:
                if not isinstance(value, bool):
                    raise QATrainArgsError(f'training argument {f.name!r} must be true or false, got {value!r}')
            elif kind is str:
                if not isinstance(value, (str, os.PathLike)):
                    raise QATrainArgsError(f'training argument {f.name!r} must be a path string, got {value!r}')
                value = str(value)
            if f.name in self._RANGES:
                low, high, inclusive = self._RANGES[f.name]
                if value > high or value < low or (not inclusive and value == low):
                    op = '>=' if inclusive else '>'
                    raise QATrainArgsError(
                        f'training argument {f.name!r} must be {op} {low} and <= {high}, got {value!r}'
                    )
            setattr(self, f.name, value)
        if self.adam_beta1 >= 1.0 or self.adam_beta2 >= 1.0:
            raise QATrainArgsError('training arguments adam_beta1/adam_beta2 must be < 1')
        if self.max_query_length + 8 >= self.max_seq_length:
            raise QATrainArgsError(
                f'training argument max_seq_length={self.max_seq_length} leaves no room for a context after '
                f'max_query_length={self.max_query_length}'
            )

    @classmethod
    def from_any(cls, args: Union[None, 'QATrainArgs', Mapping[str, Any]]) -> 'QATrainArgs':
        """``None`` -> defaults; a ``QATrainArgs`` as is; a dict -> checked (unknown keys raise, naming them)."""
        if args is None:
            return cls()
        if isinstance(args, cls):
            return dataclasses.replace(args)  # re-validates
        if not isinstance(args, Mapping):
            raise QATrainArgsError(f'training args must be a dict or QATrainArgs, got {type(args).__name__}')
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in args if k not in known)
        if unknown:
            raise QATrainArgsError(f'unknown training argument(s) {unknown}; known: {known}')
        return cls(**dict(args))

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


_FIELD_KINDS = {
    'learning_rate': float, 'weight_decay': float, 'adam_beta1': float, 'adam_beta2': float, 'adam_epsilon': float,
    'max_grad_norm': float, 'num_train_epochs': float, 'batch_size': int, 'max_seq_length': int, 'doc_stride': int,
    'max_query_length': int, 'negatives_per_question': int, 'warmup_ratio': float, 'seed': int, 'bf16': bool,
    'max_train_seconds': float, 'output_dir': str, 'max_positives_per_question': int, 'freeze_layers': int,
    'question_word_type': bool, 'shared_norm_weight': float, 'checkpoint_dir': str, 'checkpoint_minutes': float,
}
