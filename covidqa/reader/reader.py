"""Extractive question answering over one or many contexts (no jina needed).

:class:`ExtractiveReader` finds answer spans for a question in a list of contexts, in steps (each its own
function: encode -> logits -> decode -> priors -> rank):

1. every (question, context) pair is tokenized as ``[CLS] question [SEP] context [SEP]``; a context longer than one
   window of ``max_seq_length`` tokens is split into overlapping windows (``doc_stride`` = overlap in tokens
   between consecutive windows, as in HuggingFace ``run_qa.py``), each keeping the character offsets of its tokens;
   for a model trained with the question-word token type (``type_vocab_size`` 3 in its config, see
   :mod:`covidqa.text.question_match`) context tokens that repeat a question word get token type 2 instead of 1
   (:func:`covidqa.reader.windows.encode_pairs`);
2. all windows (of all contexts) are run through the span model in length-sorted, dynamically padded batches
   (:meth:`ExtractiveReader.window_logits`);
3. start and end logits are turned into probabilities with one softmax per question over the context tokens plus
   ``[CLS]`` (the "no answer" slot) of all its windows, of all its contexts (shared normalisation, as the reader is
   trained: :mod:`covidqa.training.losses.shared_norm`; with a single window it is that window's softmax), so spans of
   different windows and contexts compare; a span's score is ``p_start * p_end`` (in ``[0, 1]``); spans end at or
   after their start and are at most ``max_answer_length`` tokens long (a pure function of the logits:
   :func:`covidqa.reader.decoding.decode_spans`);
4. with ``lexical_weight`` > 0 (the default) a span's score is multiplied by ``exp(-lexical_weight * (1 - match))``,
   where ``match`` (in [0, 1], 1 for the best) is how well the context sentences it touches match the question's
   words (BM25 over the sentences of the question's contexts, :mod:`covidqa.text.lexical`; BERTserini's interpolation of
   reader and BM25 scores, per sentence): on COVID-QA full articles it is the window choice that the model gets
   wrong most, and the answer's sentence usually repeats the question's words;
5. spans from all windows and contexts are merged, deduplicated by ``(context, start, end)`` (the best score wins),
   spans that overlap a better answer of the same context by more than ``overlap_threshold`` of their characters (or
   of the better answer's) are dropped (:func:`covidqa.reader.decoding.drop_overlapping`, as haystack's
   ``ExtractiveReader``), and the ``top_k`` best returned (:func:`_rank`), best first, with **character** offsets
   such that
   ``contexts[i][answer.start:answer.end] == answer.answer``.

"No answer": spans whose probability *within their window* (softmax over that window's ``[CLS]`` + context
tokens) is below ``no_answer_threshold`` are dropped; when none is left the result is the single
no-answer :class:`Answer` (``answer=''``, ``start=end=-1``) whose score is the model's no-answer probability, i.e.
``p_start[CLS] * p_end[CLS]`` of the window that is most confident that it holds an answer (the minimum over
windows). ``no_answer_threshold=0`` always answers.

Backends: ``'torch'`` (transformers, default), ``'onnx'`` or ``'onnx-int8'`` (:class:`covidqa.models.onnx.OnnxQARunner`,
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
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

if TYPE_CHECKING:
    import torch

from covidqa.models.loading import BASE_MODEL_NAME, load_qa_model, load_tokenizer
from covidqa.paths import PathLike, default_reader_dir
from covidqa.reader.decoding import (
    DecodedSpans,
    SpanCandidate,
    decode_spans,
    drop_overlapping,
    question_normalisers,
    window_probabilities,
)
from covidqa.reader.windows import (
    DEFAULT_DOC_STRIDE,
    DEFAULT_MAX_QUERY_LENGTH,
    DEFAULT_MAX_SEQ_LENGTH,
    QAWindows,
    encode_pairs,
    label_windows,
)
from covidqa.runtime.torch_gate import require_torch
from covidqa.text.lexical import sentence_matches, span_match
from covidqa.text.question_match import uses_question_word_type
from covidqa.text.tokenization import length_sorted_batches, pad_batch

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
    'DEFAULT_OVERLAP_THRESHOLD',
]

logger = logging.getLogger(__name__)

BACKENDS = ('torch', 'onnx', 'onnx-int8')
DEFAULT_MAX_ANSWER_LENGTH = 64
DEFAULT_BATCH_SIZE = 16
# Spans below this probability are not answers. Low on purpose: COVID-QA answers are long (median ~12 tokens), so
# even right answers often score 0.05-0.3; 0.01 only filters spans the model finds very unlikely.
DEFAULT_NO_ANSWER_THRESHOLD = 0.01
# How much a span outside the context sentences that best match the question's words is discounted
# (:mod:`covidqa.text.lexical`): score * exp(-weight * (1 - match)). Full-article dev F1 of two default readers peaks
# at 12-30 (benchmarks/READER_RESULTS.md, "Lexical sentence prior"); paragraph F1 hardly moves.
DEFAULT_LEXICAL_WEIGHT = 20.0
# top_k answers are distinct: a span sharing more than this fraction of its own characters, or of a better answer's,
# with a better answer of the same context is dropped (haystack's ExtractiveReader default); 1.0 keeps near-copies
# ("from person-to-person." and "person-to-person"). The best answer is never dropped: top-1 EM/F1 do not depend on it.
DEFAULT_OVERLAP_THRESHOLD = 0.01

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
    repository (checksum verified, unpacked once: :mod:`covidqa.models.shipped`), else ``'base'`` (with a warning);
    anything else as is. A damaged shipped file raises :class:`covidqa.models.shipped.ShippedReaderError`."""
    if model is not None:
        return model
    reader_dir = default_reader_dir()
    if (reader_dir / 'config.json').is_file():
        return reader_dir
    from covidqa.models.shipped import has_shipped_reader, shipped_reader_dir

    if has_shipped_reader():
        return shipped_reader_dir()
    logger.warning(
        'no trained reader in %s and no shipped reader: using the base all-MiniLM-L6-v2 with an UNTRAINED span head '
        '(answers are noise); train one with `make reader-pretrain reader`', reader_dir,
    )
    return BASE_MODEL_NAME


class TorchQARunner:
    """``(input_ids, attention_mask, token_type_ids) -> (start_logits, end_logits)`` with a transformers QA model.

    ``model`` is a model directory (or ``'base'``), loaded with :func:`covidqa.models.loading.load_qa_model`, or an already
    loaded ``AutoModelForQuestionAnswering`` (used as is, e.g. while training).
    """

    def __init__(self, model: Union[PathLike, 'torch.nn.Module', None] = None, num_threads: Optional[int] = None):
        require_torch("the reader's torch backend")
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
        :mod:`covidqa.text.lexical`) are discounted: score times ``exp(-lexical_weight * (1 - match))``; 0 = off.
    :param overlap_threshold: a span sharing more than this fraction of its characters with a better answer of the same
        context (or of that answer's characters) is not returned, so the ``top_k`` answers differ; 1.0 = keep all.
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
        overlap_threshold: float = DEFAULT_OVERLAP_THRESHOLD,
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
        self.overlap_threshold = _check_number('overlap_threshold', overlap_threshold, 1.0)
        self._runner: Optional[Runner] = runner
        self._tokenizer: Optional[Any] = None  # a transformers tokenizer, loaded by load()
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
                    from covidqa.models.onnx import OnnxQARunner

                    self._runner = OnnxQARunner(self.model_path, num_threads=self.num_threads,
                                                quantize=self.backend == 'onnx-int8')
                else:
                    self._runner = TorchQARunner(self.model_path, num_threads=self.num_threads)
        return self

    @property
    def tokenizer(self):
        self.load()
        return self._tokenizer

    @property
    def marks_question_words(self) -> bool:
        """Whether the span model was trained with the question-word token type (:mod:`covidqa.text.question_match`):
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
        tokenizer, runner = self._tokenizer, self._runner
        assert tokenizer is not None and runner is not None  # set by load()
        batch_size = _check_positive_int('batch_size', batch_size or self.batch_size)
        out: List[Optional[Tuple[np.ndarray, np.ndarray]]] = [None] * len(windows)
        pad_id = int(tokenizer.pad_token_id or 0)
        for positions in length_sorted_batches([len(x) for x in windows.input_ids], batch_size):
            input_ids, attention_mask = pad_batch([windows.input_ids[p] for p in positions], pad_id=pad_id)
            token_type_ids, _ = pad_batch([windows.token_type_ids[p] for p in positions], pad_id=0)
            start, end = runner(input_ids, attention_mask, token_type_ids)
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
        overlap_threshold: Optional[float] = None,
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
                              doc_stride=doc_stride, batch_size=batch_size, lexical_weight=lexical_weight,
                              overlap_threshold=overlap_threshold)[0]

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
        overlap_threshold: Optional[float] = None,
    ) -> List[List[Answer]]:
        """:meth:`read` for several questions at once (``contexts[i]`` are the contexts of ``questions[i]``);
        windows of all questions share batches. Returns one answer list per question, in order."""
        return self.read_many_detailed(
            questions, contexts, context_ids, top_k=top_k, max_answer_length=max_answer_length,
            no_answer_threshold=no_answer_threshold, max_seq_length=max_seq_length, doc_stride=doc_stride,
            batch_size=batch_size, lexical_weight=lexical_weight, overlap_threshold=overlap_threshold,
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
        overlap_threshold: Optional[float] = None,
    ) -> 'ReadDetails':
        """:meth:`read_many` that also returns the windows and their logits (used for evaluation losses).

        The steps: :meth:`_pairs` (check the inputs, one pair per non-empty context) -> :func:`encode_pairs`
        (windows) -> :meth:`window_logits` (model calls) -> :func:`covidqa.reader.decoding.decode_spans` (candidate
        spans per question) -> :func:`_lexical_priors` -> :func:`_rank` (answers)."""
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
        overlap_threshold = _check_number(
            'overlap_threshold', overlap_threshold if overlap_threshold is not None else self.overlap_threshold, 1.0)
        pair_q, pair_c, pair_owner = self._pairs(questions, contexts, context_ids)
        if not pair_q:
            return ReadDetails([[Answer('', 1.0, -1, -1)] for _ in questions],
                               QAWindows([], [], [], [], np.zeros(0, np.int64)), [], [])
        self.load()
        windows = encode_pairs(self._tokenizer, pair_q, pair_c, max_seq_length, doc_stride, self.max_query_length,
                               mark_question_words=self.marks_question_words)
        logits = self.window_logits(windows, batch_size)

        owners = [pair_owner[int(p)][0] for p in windows.pair]
        norm_start, norm_end = question_normalisers(logits, windows.context_mask, owners, len(questions))
        per_question: List[List[int]] = [[] for _ in questions]
        for w, qi in enumerate(owners):
            per_question[qi].append(w)
        # candidates per window: the lexical prior may re-rank them, and with overlap_threshold < 1 most of a window's
        # best spans are near-copies of its best one (other starts and ends around it), so top_k > 1 decodes more
        keep = max(top_k * 4, 20) if top_k == 1 or overlap_threshold >= 1.0 else max(top_k * 20, 100)
        results = []
        for qi, ws in enumerate(per_question):
            decoded = decode_spans(
                [logits[w] for w in ws], [windows.offsets[w] for w in ws], [windows.context_mask[w] for w in ws],
                (norm_start[qi], norm_end[qi]), top_k=keep, max_answer_length=max_answer_length,
                no_answer_threshold=threshold, windows=ws, contexts=[pair_owner[int(windows.pair[w])][1] for w in ws])
            scores = [c.score for c in decoded.candidates]
            if lexical_weight > 0 and decoded.candidates:
                scores = _lexical_priors(questions[qi], contexts[qi], decoded.candidates, scores, lexical_weight)
            ids = context_ids[qi] if context_ids is not None else None
            results.append(_rank(decoded, scores, contexts[qi], ids, top_k, overlap_threshold))
        return ReadDetails(results, windows, logits, pair_owner)

    @staticmethod
    def _pairs(questions, contexts, context_ids) -> Tuple[List[str], List[str], List[Tuple[int, int]]]:
        """Checks the inputs of :meth:`read_many_detailed`; returns the (question, context) pairs to read, one per
        non-empty context, and each pair's ``(question index, context index)``."""
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
        return pair_q, pair_c, pair_owner


def _lexical_priors(question: str, contexts: Sequence[str], candidates: Sequence[SpanCandidate],
                    scores: Sequence[float], lexical_weight: float) -> List[float]:
    """``scores[i]`` (of ``candidates[i]``) times ``exp(-lexical_weight * (1 - match))``, ``match`` being how well
    the context sentences the span touches match the question's words (:mod:`covidqa.text.lexical`)."""
    per_context = sentence_matches(question, contexts)  # every context was checked to be a string
    starts = [[x.start for x in sents] for sents in per_context]
    return [score * math.exp(-lexical_weight * (1.0 - span_match(per_context[c.context], c.start, c.end,
                                                                 starts[c.context])))
            for c, score in zip(candidates, scores)]


def _rank(decoded: DecodedSpans, scores: Sequence[float], contexts: Sequence[str],
          context_ids: Optional[Sequence[Optional[str]]], top_k: int, overlap_threshold: float) -> List[Answer]:
    """The ``top_k`` best candidates (by ``scores``, ties by ``(context, start, end)``; near-copies of a better one
    dropped, :func:`drop_overlapping`) as :class:`Answer`; the no-answer result when there is none."""
    ordered = sorted(zip(scores, decoded.candidates), key=lambda sc: (-sc[0], sc[1].key))
    ranked = [ordered[i] for i in drop_overlapping([c.key for _, c in ordered], overlap_threshold, limit=top_k)]
    answers = [Answer(answer=contexts[c.context][c.start:c.end], score=score, start=c.start, end=c.end,
                      context_id=(context_ids[c.context] if context_ids is not None else None),
                      context_index=c.context)
               for score, c in ranked]
    if not answers:
        no_answer = decoded.no_answer
        answers.append(Answer('', float(no_answer) if not math.isnan(no_answer) else 0.0, -1, -1))
    return answers


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
