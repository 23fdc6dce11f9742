"""Extractive question answering over one or many contexts (no jina needed).

:class:`ExtractiveReader` finds answer spans for a question in a list of contexts:

1. every (question, context) pair is tokenized as ``[CLS] question [SEP] context [SEP]``; a context longer than one
   window of ``max_seq_length`` tokens is split into overlapping windows (``doc_stride`` = overlap in tokens
   between consecutive windows, as in HuggingFace ``run_qa.py``), each keeping the character offsets of its tokens;
   for a model trained with the question-word token type (``type_vocab_size`` 3 in its config, see
   :mod:`covidqa.question_match`) context tokens that repeat a question word get token type 2 instead of 1;
2. all windows (of all contexts) are run through the span model in length-sorted, dynamically padded batches;
3. start and end logits are turned into probabilities with one softmax per question over the context tokens plus
   ``[CLS]`` (the "no answer" slot) of all its windows, of all its contexts (shared normalisation, as the reader is
   trained: :mod:`covidqa.losses.shared_norm`; with a single window it is that window's softmax), so spans of
   different windows and contexts compare; a span's score is ``p_start * p_end`` (in ``[0, 1]``); spans end at or
   after their start and are at most ``max_answer_length`` tokens long;
4. with ``lexical_weight`` > 0 (the default) a span's score is multiplied by ``exp(-lexical_weight * (1 - match))``,
   where ``match`` (in [0, 1], 1 for the best) is how well the context sentences it touches match the question's
   words (BM25 over the sentences of the question's contexts, :mod:`covidqa.lexical`; BERTserini's interpolation of
   reader and BM25 scores, per sentence): on COVID-QA full articles it is the window choice that the model gets
   wrong most, and the answer's sentence usually repeats the question's words;
5. spans from all windows and contexts are merged, deduplicated by ``(context, start, end)`` (the best score wins)
   and the ``top_k`` best returned, best first, with **character** offsets such that
   ``contexts[i][answer.start:answer.end] == answer.answer``.

"No answer": spans whose probability *within their window* (softmax over that window's ``[CLS]`` + context
tokens) is below ``no_answer_threshold`` are dropped; when none is left the result is the single
no-answer :class:`Answer` (``answer=''``, ``start=end=-1``) whose score is the model's no-answer probability, i.e.
``p_start[CLS] * p_end[CLS]`` of the window that is most confident that it holds an answer (the minimum over
windows). ``no_answer_threshold=0`` always answers.

Backends: ``'torch'`` (transformers, default), ``'onnx'`` or ``'onnx-int8'`` (:class:`covidqa.onnx_backend.OnnxQARunner`,
int8: dynamic quantization; imported only when asked for), or any callable ``runner(input_ids, attention_mask, token_type_ids) -> (start_logits,
end_logits)`` on int64 numpy arrays of shape ``(batch, seq)`` returning float arrays of the same shape.

The checkpoint: ``model=None`` means the trained reader in :func:`covidqa.paths.default_reader_dir` when it holds
one, else the packaged base encoder (with an untrained span head: a warning is logged, answers are noise).

Example::

    reader = ExtractiveReader(top_k=2)                     # nothing is loaded yet
    answers = reader.read('Where did the outbreak start?',
                          ['The outbreak started in Wuhan, China, in December 2019.'],
                          context_ids=['doc-1'])
    best = answers[0]     # Answer(answer='Wuhan, China', score=0.93, start=24, end=36, context_id='doc-1', ...)
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

if TYPE_CHECKING:
    import torch

from covidqa.lexical import Sentence, sentence_matches, span_match
from covidqa.models import BASE_MODEL_NAME, load_qa_model, load_tokenizer
from covidqa.paths import PathLike, default_reader_dir
from covidqa.question_match import QUESTION_WORD_TYPE, QuestionWordMarker, uses_question_word_type
from covidqa.tokenization import length_sorted_batches, pad_batch

__all__ = [
    'Answer',
    'ExtractiveReader',
    'ReadDetails',
    'TorchQARunner',
    'QAWindows',
    'encode_pairs',
    'label_windows',
    'window_probabilities',
    'question_normalisers',
    'resolve_reader_model',
    'DEFAULT_NO_ANSWER_THRESHOLD',
    'DEFAULT_LEXICAL_WEIGHT',
]

logger = logging.getLogger(__name__)

BACKENDS = ('torch', 'onnx', 'onnx-int8')
DEFAULT_MAX_SEQ_LENGTH = 384
DEFAULT_DOC_STRIDE = 128
DEFAULT_MAX_ANSWER_LENGTH = 64
DEFAULT_MAX_QUERY_LENGTH = 64
DEFAULT_BATCH_SIZE = 16
# Spans below this probability are not answers. Low on purpose: COVID-QA answers are long (median ~12 tokens), so
# even right answers often score 0.05-0.3; 0.01 only filters spans the model finds very unlikely.
DEFAULT_NO_ANSWER_THRESHOLD = 0.01
# How much a span outside the context sentences that best match the question's words is discounted
# (:mod:`covidqa.lexical`): score * exp(-weight * (1 - match)). Full-article dev F1 of two default readers peaks
# at 12-30 (benchmarks/READER_RESULTS.md, "Lexical sentence prior"); paragraph F1 hardly moves.
DEFAULT_LEXICAL_WEIGHT = 20.0

Runner = Callable[[np.ndarray, np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


@dataclass
class Answer:
    """One extracted answer, best-first in :meth:`ExtractiveReader.read` results.

    ``contexts[context_index][start:end] == answer`` (character offsets). The no-answer result has ``answer=''``,
    ``start=end=-1``, ``context_id=None``, ``context_index=-1`` and its score is the no-answer probability.
    """

    answer: str
    score: float
    start: int
    end: int
    context_id: Optional[str] = None
    context_index: int = -1

    @property
    def is_no_answer(self) -> bool:
        return self.start < 0


def resolve_reader_model(model: Optional[PathLike]) -> PathLike:
    """``None`` -> the reader trained into the service home if there is one, else the reader shipped in the
    repository (checksum verified, unpacked once: :mod:`covidqa.shipped`), else ``'base'`` (with a warning);
    anything else as is. A damaged shipped file raises :class:`covidqa.shipped.ShippedReaderError`."""
    if model is not None:
        return model
    reader_dir = default_reader_dir()
    if (reader_dir / 'config.json').is_file():
        return reader_dir
    from covidqa.shipped import has_shipped_reader, shipped_reader_dir

    if has_shipped_reader():
        return shipped_reader_dir()
    logger.warning(
        'no trained reader in %s and no shipped reader: using the base all-MiniLM-L6-v2 with an UNTRAINED span head '
        '(answers are noise); train one with `make reader-pretrain reader`', reader_dir,
    )
    return BASE_MODEL_NAME


class TorchQARunner:
    """``(input_ids, attention_mask, token_type_ids) -> (start_logits, end_logits)`` with a transformers QA model.

    ``model`` is a model directory (or ``'base'``), loaded with :func:`covidqa.models.load_qa_model`, or an already
    loaded ``AutoModelForQuestionAnswering`` (used as is, e.g. while training).
    """

    def __init__(self, model: Union[PathLike, 'torch.nn.Module', None] = None, num_threads: Optional[int] = None):
        import torch

        if num_threads:
            torch.set_num_threads(num_threads)
        self.model = model if isinstance(model, torch.nn.Module) else load_qa_model(model)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray):
        import torch

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                out = self.model(
                    input_ids=torch.from_numpy(np.ascontiguousarray(input_ids, dtype=np.int64)),
                    attention_mask=torch.from_numpy(np.ascontiguousarray(attention_mask, dtype=np.int64)),
                    token_type_ids=torch.from_numpy(np.ascontiguousarray(token_type_ids, dtype=np.int64)),
                )
        finally:
            if was_training:
                self.model.train()
        return out.start_logits.float().numpy(), out.end_logits.float().numpy()


@dataclass
class QAWindows:
    """Tokenized windows of (question, context) pairs, unpadded, one entry per window.

    - ``input_ids``/``token_type_ids``: int64 arrays;
    - ``offsets``: (n_tokens, 2) int arrays of character offsets into the pair's context (``-1`` outside it);
    - ``context_mask``: bool arrays, True on context tokens;
    - ``pair``: for each window, the index of its (question, context) pair.
    """

    input_ids: List[np.ndarray]
    token_type_ids: List[np.ndarray]
    offsets: List[np.ndarray]
    context_mask: List[np.ndarray]
    pair: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_pairs(
    tokenizer,
    questions: Sequence[str],
    contexts: Sequence[str],
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
    doc_stride: int = DEFAULT_DOC_STRIDE,
    max_query_length: int = DEFAULT_MAX_QUERY_LENGTH,
    mark_question_words: bool = False,
) -> QAWindows:
    """Windows for aligned ``questions[i]``/``contexts[i]`` pairs (see :class:`QAWindows`).

    Each window is ``[CLS] question [SEP] context piece [SEP]`` (the layout and windows of a HuggingFace fast
    tokenizer called with ``truncation='only_second', stride=..., return_overflowing_tokens=True``), but every
    distinct context and question is tokenized only once, so many questions over one long article stay cheap.
    Questions longer than ``max_query_length`` tokens are cut. Consecutive windows overlap by ``doc_stride``
    tokens, at most half of a window's context room (every window moves on by at least half a window).
    With ``mark_question_words`` context tokens that repeat a question word get token type 2 instead of 1
    (:mod:`covidqa.question_match`; for models trained with that third type).
    Raises ``ValueError`` when ``max_seq_length`` leaves no room for the context.
    """
    if len(questions) != len(contexts):
        raise ValueError(f'{len(questions)} questions but {len(contexts)} contexts')
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None or tokenizer.num_special_tokens_to_add(pair=True) != 3:
        raise ValueError('encode_pairs needs a BERT-style tokenizer ([CLS] a [SEP] b [SEP])')
    unique_q = list(dict.fromkeys(questions))
    unique_c = list(dict.fromkeys(contexts))
    q_ids = dict(zip(unique_q, tokenizer(unique_q, add_special_tokens=False, verbose=False)['input_ids']))
    c_enc = tokenizer(unique_c, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    c_tok = {c: (np.asarray(ids, dtype=np.int64), np.asarray(off, dtype=np.int64).reshape(-1, 2))
             for c, ids, off in zip(unique_c, c_enc['input_ids'], c_enc['offset_mapping'])}
    marker = QuestionWordMarker(tokenizer) if mark_question_words else None

    input_ids, token_types, offsets, masks, pairs = [], [], [], [], []
    for pair, (question, context) in enumerate(zip(questions, contexts)):
        q = np.asarray(q_ids[question][:max_query_length], dtype=np.int64)
        room = max_seq_length - len(q) - 3
        if room < 8:
            raise ValueError(
                f'max_seq_length={max_seq_length} leaves {room} tokens for the context after a {len(q)}-token '
                f'question; use a larger max_seq_length (e.g. 256 or 384)'
            )
        step = room - max(0, min(doc_stride, room // 2))
        ids, off = c_tok[context]
        head = np.concatenate([[cls_id], q, [sep_id]]).astype(np.int64)
        context_types = np.ones(len(ids), np.int64)
        if marker is not None:
            context_types[marker.marks(q, ids)] = QUESTION_WORD_TYPE
        begin = 0
        while True:
            piece = slice(begin, begin + room)
            n_ctx = len(ids[piece])
            input_ids.append(np.concatenate([head, ids[piece], [sep_id]]).astype(np.int64))
            token_types.append(np.concatenate([np.zeros(len(head), np.int64), context_types[piece], [1]]))
            window_off = np.full((len(head) + n_ctx + 1, 2), -1, dtype=np.int64)
            window_off[len(head) : len(head) + n_ctx] = off[piece]
            mask = np.zeros(len(head) + n_ctx + 1, dtype=bool)
            mask[len(head) : len(head) + n_ctx] = True
            offsets.append(window_off)
            masks.append(mask)
            pairs.append(pair)
            if begin + room >= len(ids):
                break
            begin += step
    return QAWindows(input_ids, token_types, offsets, masks, np.asarray(pairs, dtype=np.int64))


def label_windows(windows: QAWindows, char_spans: Sequence[Optional[Tuple[int, int]]]) -> Tuple[np.ndarray, np.ndarray]:
    """Token start/end labels per window for the answer ``char_spans[pair] = (start, end)`` (end exclusive).

    A window that does not hold the whole answer (or a pair whose span is ``None``/``(-1, -1)``: no answer) is
    labelled ``(0, 0)``, the ``[CLS]`` position. Returns two int64 arrays of length ``len(windows)``.
    """
    starts = np.zeros(len(windows), dtype=np.int64)
    ends = np.zeros(len(windows), dtype=np.int64)
    for w in range(len(windows)):
        span = char_spans[int(windows.pair[w])]
        if span is None or span[0] < 0:
            continue
        a_start, a_end = span
        off, mask = windows.offsets[w], windows.context_mask[w]
        idx = np.nonzero(mask)[0]
        if len(idx) == 0 or off[idx[0], 0] > a_start or off[idx[-1], 1] < a_end:
            continue
        token_start = idx[np.nonzero(off[idx, 1] > a_start)[0][0]]
        token_end = idx[np.nonzero(off[idx, 0] < a_end)[0][-1]]
        if token_end < token_start:
            continue
        starts[w], ends[w] = token_start, token_end
    return starts, ends


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max()
    e = np.exp(x)
    return e / e.sum()


def window_probabilities(start_logits: np.ndarray, end_logits: np.ndarray, context_mask: np.ndarray):
    """Start/end probabilities over ``[CLS]`` + the context tokens of one window (0 elsewhere)."""
    allowed = context_mask.copy()
    allowed[0] = True
    neg = np.float64(-1e9)
    s = np.where(allowed, start_logits.astype(np.float64), neg)
    e = np.where(allowed, end_logits.astype(np.float64), neg)
    return _softmax(s), _softmax(e)


def question_normalisers(logits: Sequence[Tuple[np.ndarray, np.ndarray]], context_masks: Sequence[np.ndarray],
                         owners: Sequence[int], n_questions: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per question, the log-sum-exp of the start (and end) logits over ``[CLS]`` + the context tokens of all its
    windows (``owners[w]`` = the question of window ``w``): ``exp(logit - normaliser)`` is then one softmax over
    every window and context of the question, as the reader is trained with shared normalisation
    (:mod:`covidqa.losses.shared_norm`). With one window it equals :func:`window_probabilities`."""
    norm_start = np.full(n_questions, -np.inf)
    norm_end = np.full(n_questions, -np.inf)
    for (start_logits, end_logits), mask, q in zip(logits, context_masks, owners):
        allowed = mask.copy()
        allowed[0] = True
        norm_start[q] = np.logaddexp(norm_start[q], np.logaddexp.reduce(start_logits[allowed].astype(np.float64)))
        norm_end[q] = np.logaddexp(norm_end[q], np.logaddexp.reduce(end_logits[allowed].astype(np.float64)))
    return norm_start, norm_end


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')
    return value


def _check_number(name: str, value, high: float) -> float:
    """``value`` as a float in ``[0, high]``, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= high:
        raise ValueError(f'{name} must be a number between 0 and {high:g}, got {value!r}')
    return float(value)


class ExtractiveReader:
    """Extractive QA reader; ``__init__`` only stores the configuration, :meth:`load` (or first use) loads.

    :param model: model directory, ``'base'``, or ``None`` (the trained default reader, else base + warning).
    :param backend: ``'torch'``, ``'onnx'`` or ``'onnx-int8'``.
    :param runner: optional ready span-model callable (overrides ``backend``), see the module docstring.
    :param max_seq_length: tokens per window (question + context + specials).
    :param doc_stride: overlap in tokens between consecutive windows of a long context.
    :param max_answer_length: longest answer in tokens.
    :param top_k: answers returned per question.
    :param no_answer_threshold: spans whose probability within their window is below it are dropped (``0`` = always answer
        when there is context).
    :param batch_size: windows per model call.
    :param lexical_weight: how strongly spans outside the sentences that best match the question's words (BM25,
        :mod:`covidqa.lexical`) are discounted: score times ``exp(-lexical_weight * (1 - match))``; 0 = off.
    :param max_query_length: questions are cut to this many tokens.
    :param num_threads: torch / ONNX Runtime intra-op threads (None: library default).

    Every ``read`` argument except the question and contexts overrides the stored default for that call only.
    """

    def __init__(
        self,
        model: Optional[PathLike] = None,
        backend: str = 'torch',
        max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
        doc_stride: int = DEFAULT_DOC_STRIDE,
        max_answer_length: int = DEFAULT_MAX_ANSWER_LENGTH,
        top_k: int = 1,
        no_answer_threshold: float = DEFAULT_NO_ANSWER_THRESHOLD,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_query_length: int = DEFAULT_MAX_QUERY_LENGTH,
        num_threads: Optional[int] = None,
        lexical_weight: float = DEFAULT_LEXICAL_WEIGHT,
        runner: Optional[Runner] = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        if runner is not None and not callable(runner):
            raise ValueError(f'runner must be callable (input_ids, attention_mask, token_type_ids), got {runner!r}')
        self.model = model
        self.backend = backend
        self.max_seq_length = _check_positive_int('max_seq_length', max_seq_length, 16)
        self.doc_stride = _check_positive_int('doc_stride', doc_stride, 0)
        self.max_answer_length = _check_positive_int('max_answer_length', max_answer_length)
        self.top_k = _check_positive_int('top_k', top_k)
        self.no_answer_threshold = _check_number('no_answer_threshold', no_answer_threshold, 1.0)
        self.batch_size = _check_positive_int('batch_size', batch_size)
        self.max_query_length = _check_positive_int('max_query_length', max_query_length)
        self.num_threads = num_threads
        self.lexical_weight = _check_number('lexical_weight', lexical_weight, 100.0)
        self._runner: Optional[Runner] = runner
        self._tokenizer = None
        self._model_path: Optional[PathLike] = None
        self._marks_question_words: Optional[bool] = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    @property
    def model_path(self) -> PathLike:
        """The checkpoint actually used (resolved on first use)."""
        if self._model_path is None:
            self._model_path = resolve_reader_model(self.model)
        return self._model_path

    def load(self) -> 'ExtractiveReader':
        """Load tokenizer and span model (idempotent). Returns ``self``."""
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = load_tokenizer(self.model_path)
            if self._runner is None:
                if self.backend.startswith('onnx'):
                    from covidqa.onnx_backend import OnnxQARunner

                    quantize = True if self.backend == 'onnx-int8' else None  # None: $COVIDQA_ONNX_INT8 decides
                    self._runner = OnnxQARunner(self.model_path, num_threads=self.num_threads, quantize=quantize)
                else:
                    self._runner = TorchQARunner(self.model_path, num_threads=self.num_threads)
        return self

    @property
    def tokenizer(self):
        self.load()
        return self._tokenizer

    @property
    def marks_question_words(self) -> bool:
        """Whether the span model was trained with the question-word token type (:mod:`covidqa.question_match`):
        asked of the in-memory model when the runner has one (it can change while training), else of the
        checkpoint's ``config.json``."""
        self.load()
        model = getattr(self._runner, 'model', None)
        if model is not None and hasattr(model, 'config'):
            return uses_question_word_type(model)
        if self._marks_question_words is None:
            self._marks_question_words = uses_question_word_type(self.model_path)
        return self._marks_question_words

    # ------------------------------------------------------------------ model calls
    def window_logits(self, windows: QAWindows, batch_size: Optional[int] = None) -> List[Tuple[np.ndarray, np.ndarray]]:
        """(start_logits, end_logits) per window (unpadded length), computed in length-sorted padded batches."""
        self.load()
        batch_size = _check_positive_int('batch_size', batch_size or self.batch_size)
        out: List[Optional[Tuple[np.ndarray, np.ndarray]]] = [None] * len(windows)
        pad_id = int(self._tokenizer.pad_token_id or 0)
        for positions in length_sorted_batches([len(x) for x in windows.input_ids], batch_size):
            input_ids, attention_mask = pad_batch([windows.input_ids[p] for p in positions], pad_id=pad_id)
            token_type_ids, _ = pad_batch([windows.token_type_ids[p] for p in positions], pad_id=0)
            start, end = self._runner(input_ids, attention_mask, token_type_ids)
            start, end = np.asarray(start), np.asarray(end)
            for row, p in enumerate(positions):
                n = len(windows.input_ids[p])
                out[p] = (start[row, :n], end[row, :n])
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ reading
    def read(
        self,
        question: str,
        contexts: Sequence[str],
        context_ids: Optional[Sequence[Optional[str]]] = None,
        top_k: Optional[int] = None,
        max_answer_length: Optional[int] = None,
        no_answer_threshold: Optional[float] = None,
        max_seq_length: Optional[int] = None,
        doc_stride: Optional[int] = None,
        batch_size: Optional[int] = None,
        lexical_weight: Optional[float] = None,
    ) -> List[Answer]:
        """The ``top_k`` best answers to ``question`` over all ``contexts``, best first.

        :param question: non-empty question text.
        :param contexts: texts to search (any length: long ones are windowed; empty ones are skipped).
        :param context_ids: optional ids, aligned with ``contexts``, copied into :attr:`Answer.context_id`.
        :returns: 1..top_k :class:`Answer` objects; ``[no-answer]`` when no span reaches ``no_answer_threshold``
            (or there is no non-empty context, with score 1.0).

        Example: ``reader.read('What is the incubation period?', [article_text], top_k=3)``
        """
        return self.read_many([question], [contexts], [context_ids] if context_ids is not None else None,
                              top_k=top_k, max_answer_length=max_answer_length,
                              no_answer_threshold=no_answer_threshold, max_seq_length=max_seq_length,
                              doc_stride=doc_stride, batch_size=batch_size, lexical_weight=lexical_weight)[0]

    def read_many(
        self,
        questions: Sequence[str],
        contexts: Sequence[Sequence[str]],
        context_ids: Optional[Sequence[Optional[Sequence[Optional[str]]]]] = None,
        top_k: Optional[int] = None,
        max_answer_length: Optional[int] = None,
        no_answer_threshold: Optional[float] = None,
        max_seq_length: Optional[int] = None,
        doc_stride: Optional[int] = None,
        batch_size: Optional[int] = None,
        lexical_weight: Optional[float] = None,
    ) -> List[List[Answer]]:
        """:meth:`read` for several questions at once (``contexts[i]`` are the contexts of ``questions[i]``);
        windows of all questions share batches. Returns one answer list per question, in order."""
        return self.read_many_detailed(
            questions, contexts, context_ids, top_k=top_k, max_answer_length=max_answer_length,
            no_answer_threshold=no_answer_threshold, max_seq_length=max_seq_length, doc_stride=doc_stride,
            batch_size=batch_size, lexical_weight=lexical_weight,
        ).answers

    def read_many_detailed(
        self,
        questions: Sequence[str],
        contexts: Sequence[Sequence[str]],
        context_ids: Optional[Sequence[Optional[Sequence[Optional[str]]]]] = None,
        top_k: Optional[int] = None,
        max_answer_length: Optional[int] = None,
        no_answer_threshold: Optional[float] = None,
        max_seq_length: Optional[int] = None,
        doc_stride: Optional[int] = None,
        batch_size: Optional[int] = None,
        lexical_weight: Optional[float] = None,
    ) -> 'ReadDetails':
        """:meth:`read_many` that also returns the windows and their logits (used for evaluation losses)."""
        top_k = _check_positive_int('top_k', top_k if top_k is not None else self.top_k)
        max_answer_length = _check_positive_int(
            'max_answer_length', max_answer_length if max_answer_length is not None else self.max_answer_length)
        threshold = _check_number('no_answer_threshold', no_answer_threshold if no_answer_threshold is not None
                                  else self.no_answer_threshold, 1.0)
        max_seq_length = _check_positive_int(
            'max_seq_length', max_seq_length if max_seq_length is not None else self.max_seq_length, 16)
        doc_stride = _check_positive_int('doc_stride', doc_stride if doc_stride is not None else self.doc_stride, 0)
        lexical_weight = _check_number(
            'lexical_weight', lexical_weight if lexical_weight is not None else self.lexical_weight, 100.0)
        if isinstance(questions, str):
            raise ValueError('questions must be a list of strings (use read() for one question)')
        if len(contexts) != len(questions):
            raise ValueError(f'{len(questions)} questions but {len(contexts)} context lists')
        if context_ids is not None and len(context_ids) != len(questions):
            raise ValueError(f'{len(questions)} questions but {len(context_ids)} context id lists')

        pair_q: List[str] = []
        pair_c: List[str] = []
        pair_owner: List[Tuple[int, int]] = []  # (question index, context index)
        for qi, (question, ctxs) in enumerate(zip(questions, contexts)):
            if not isinstance(question, str) or not question.strip():
                raise ValueError(f'question {qi} is empty or not a string: {question!r}')
            if isinstance(ctxs, str):
                raise ValueError(f'contexts of question {qi} must be a list of strings, got one string')
            ids = context_ids[qi] if context_ids is not None else None
            if ids is not None and len(ids) != len(ctxs):
                raise ValueError(f'question {qi}: {len(ctxs)} contexts but {len(ids)} context_ids')
            for ci, ctx in enumerate(ctxs):
                if not isinstance(ctx, str):
                    raise ValueError(f'question {qi}: context {ci} must be a string, got {type(ctx).__name__}')
                if ctx.strip():
                    pair_q.append(question.strip())
                    pair_c.append(ctx)
                    pair_owner.append((qi, ci))

        results: List[List[Answer]] = [[] for _ in questions]
        if not pair_q:
            return ReadDetails([[Answer('', 1.0, -1, -1)] for _ in questions], QAWindows([], [], [], [], np.zeros(0, np.int64)), [], [])
        self.load()
        windows = encode_pairs(self._tokenizer, pair_q, pair_c, max_seq_length, doc_stride, self.max_query_length,
                               mark_question_words=self.marks_question_words)
        logits = self.window_logits(windows, batch_size)

        best: List[Dict[Tuple[int, int, int], float]] = [{} for _ in questions]
        no_answer = [1.0] * len(questions)
        keep = max(top_k * 4, 20)
        owners = [pair_owner[int(p)][0] for p in windows.pair]
        norm_start, norm_end = question_normalisers(logits, windows.context_mask, owners, len(questions))
        # per question and context: its sentences and how well each matches the question's words
        sentences: List[Optional[List[Tuple[List[Sentence], List[int]]]]] = [None] * len(questions)
        if lexical_weight > 0:
            for qi, (question, ctxs) in enumerate(zip(questions, contexts)):
                per_context = sentence_matches(question, ctxs)  # every context was checked to be a string
                sentences[qi] = [(sents, [x.start for x in sents]) for sents in per_context]
        for w, (start_logits, end_logits) in enumerate(logits):
            pair = int(windows.pair[w])
            qi, ci = pair_owner[pair]
            mask = windows.context_mask[w]
            w_start, w_end = window_probabilities(start_logits, end_logits, mask)
            no_answer[qi] = min(no_answer[qi], float(w_start[0] * w_end[0]))
            # spans compete across all windows and contexts of the question: one softmax over all of them
            p_start = np.exp(start_logits.astype(np.float64) - norm_start[qi])
            p_end = np.exp(end_logits.astype(np.float64) - norm_end[qi])
            idx = np.nonzero(mask)[0]
            if len(idx) == 0:
                continue
            scores = np.outer(p_start[idx], p_end[idx])
            span_len = idx[None, :] - idx[:, None]
            scores[(span_len < 0) | (span_len >= max_answer_length)] = 0.0
            flat = scores.ravel()
            n = min(keep, flat.size)
            top = np.argpartition(-flat, n - 1)[:n]
            off = windows.offsets[w]
            for t in top:
                score = float(flat[t])
                if score <= 0.0:
                    continue
                s_tok, e_tok = idx[t // len(idx)], idx[t % len(idx)]
                c_start, c_end = int(off[s_tok, 0]), int(off[e_tok, 1])
                if c_end <= c_start:
                    continue
                key = (ci, c_start, c_end)
                # the no-answer threshold applies to the span's probability within its own window
                in_window = float(w_start[s_tok] * w_end[e_tok])
                if in_window < threshold:
                    continue
                if sentences[qi] is not None:
                    sents, sent_starts = sentences[qi][ci]
                    score *= math.exp(-lexical_weight * (1.0 - span_match(sents, c_start, c_end, sent_starts)))
                if score > best[qi].get(key, -1.0):
                    best[qi][key] = score

        for qi in range(len(questions)):
            ranked = sorted(best[qi].items(), key=lambda kv: (-kv[1], kv[0]))
            ids = context_ids[qi] if context_ids is not None else None
            for (ci, c_start, c_end), score in ranked:
                if len(results[qi]) >= top_k:
                    break
                context = contexts[qi][ci]
                results[qi].append(Answer(
                    answer=context[c_start:c_end], score=score, start=c_start, end=c_end,
                    context_id=(ids[ci] if ids is not None else None), context_index=ci,
                ))
            if not results[qi]:
                results[qi].append(Answer('', float(no_answer[qi]) if not math.isnan(no_answer[qi]) else 0.0, -1, -1))
        return ReadDetails(results, windows, logits, pair_owner)


@dataclass
class ReadDetails:
    """What :meth:`ExtractiveReader.read_many_detailed` computed.

    ``answers[i]``: the answers of question ``i``; ``windows``/``logits``: every window and its (start, end) logits;
    ``pair_owner[p] = (question index, context index)`` of window pair ``p`` (``windows.pair`` holds ``p``).
    """

    answers: List[List[Answer]]
    windows: QAWindows
    logits: List[Tuple[np.ndarray, np.ndarray]]
    pair_owner: List[Tuple[int, int]]
