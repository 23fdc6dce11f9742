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
4. with ``lexical_weight`` > 0 (off by default: docs/decisions.md) a span's score is multiplied by ``exp(-lexical_weight * (1 - match))``,
   where ``match`` (in [0, 1], 1 for the best) is how well the context sentences it touches match the question's
   words (BM25 over the sentences of the question's contexts, :mod:`covidqa.text.lexical`; BERTserini's interpolation of
   reader and BM25 scores, per sentence): on COVID-QA full articles it is the window choice that the model gets
   wrong most, and the answer's sentence usually repeats the question's words;
5. spans from all windows and contexts are merged, deduplicated by ``(context, start, end)`` (the best score wins),
   spans that overlap a better answer of the same context by more than ``overlap_threshold`` of their characters (or
   of the better answer's) are dropped (:func:`covidqa.reader.decoding.drop_overlapping`, as haystack's
   ``ExtractiveReader``), and the ``top_k`` best returned (a calibrated reader: of the 10 best, contexts re-ranked by
   confidence, below), best first, with **character** offsets
   such that
   ``contexts[i][answer.start:answer.end] == answer.answer``.

Confidence (:mod:`covidqa.reader.confidence`): with a calibrator (the shipped reader has one) every answer's score is
the probability that it is right; the contexts are ordered by their most likely right answer (within a context the
reader's order stays), and when the best is below ``confidence_threshold`` (default: the calibrator's) the result
starts with the no-answer :class:`Answer` (score: 1 - the best's probability), the untrusted answers after it.

"No answer" also when spans whose probability *within their window* (softmax over that window's ``[CLS]`` + context
tokens) is below ``no_answer_threshold`` are dropped; when none is left the result is the single
no-answer :class:`Answer` (``answer=''``, ``start=end=-1``) whose score is the model's no-answer probability, i.e.
``p_start[CLS] * p_end[CLS]`` of the window that is most confident that it holds an answer (the minimum over
windows). ``no_answer_threshold=0`` always answers.

Backends: ``'torch'`` (transformers, default), ``'onnx'`` or ``'onnx-int8'`` (:class:`covidqa.models.onnx.OnnxQARunner`,
int8: dynamic quantization; imported only when asked for), or any callable ``runner(input_ids, attention_mask, token_type_ids) -> (start_logits,
end_logits)`` on int64 numpy arrays of shape ``(batch, seq)`` returning float arrays of the same shape.

The checkpoint: ``model=None`` means the trained reader in :func:`covidqa.paths.default_reader_dir` when it holds
one, else the packaged base encoder (with an untrained span head: a warning is logged, answers are noise).

Settings: :class:`covidqa.reader.options.ReadOptions` (one declaration: defaults, bounds, descriptions), given to
the reader as keyword arguments or ``options=``, and overridden per call of :meth:`ExtractiveReader.read`.

Example::

    reader = ExtractiveReader(top_k=2)                     # nothing is loaded yet
    result = reader.read(['Where did the outbreak start?'],
                         [['The outbreak started in Wuhan, China, in December 2019.']],
                         context_ids=[['doc-1']])
    best = result.answers[0][0]  # Answer(answer='Wuhan, China', score=0.93, start=24, end=36, context_id='doc-1')
"""
from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from covidqa.models.loading import load_tokenizer
from covidqa.paths import PathLike
from covidqa.reader.confidence import Calibrator, answer_features, calibration_for
from covidqa.reader.decoding import decode_spans, question_normalisers
from covidqa.reader.options import DEFAULT_NO_ANSWER_THRESHOLD, ReadOptions
from covidqa.reader.ranking import Answer, ReadResult, lexical_priors, no_answer, rank
from covidqa.reader.runners import BACKENDS, Runner, TorchQARunner, resolve_reader_model
from covidqa.reader.windows import QAWindows, encode_pairs
from covidqa.text.question_match import uses_question_word_type
from covidqa.text.tokenization import length_sorted_batches, pad_batch

__all__ = ['Answer', 'ExtractiveReader', 'ReadOptions', 'ReadResult']

RERANKED = 10  # answers a calibrated reader ranks by confidence before it keeps top_k


class ExtractiveReader:
    """Extractive QA reader; ``__init__`` only stores the configuration, :meth:`load` (or first use) loads.

    :param model: model directory, ``'base'``, or ``None`` (the trained default reader, else base + warning).
    :param backend: ``'torch'``, ``'onnx'`` or ``'onnx-int8'``.
    :param runner: optional ready span-model callable (overrides ``backend``), see :mod:`covidqa.reader.runners`.
    :param num_threads: torch / ONNX Runtime intra-op threads (None: library default).
    :param calibrator: the confidence of this reader's answers (:class:`covidqa.reader.confidence.Calibrator`);
        default the one fitted for the checkpoint (:func:`~covidqa.reader.confidence.calibration_for`) unless
        ``runner`` is given or ``calibrate=False`` (then scores are the reader's span scores).
    :param options: the reading settings (:class:`~covidqa.reader.options.ReadOptions`); ``**settings`` (e.g.
        ``top_k=3``) override single ones. Raises :class:`covidqa.options.OptionsError` (a ``ValueError``) naming a
        bad or unknown setting.

    :meth:`read` takes the same settings as keyword arguments, for that call only.
    """

    def __init__(self, model: Optional[PathLike] = None, backend: str = 'torch', *, runner: Optional[Runner] = None,
                 num_threads: Optional[int] = None, options: Optional[ReadOptions] = None,
                 calibrator: Optional[Calibrator] = None, calibrate: bool = True, **settings: Any):
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        if runner is not None and not callable(runner):
            raise ValueError(f'runner must be callable (input_ids, attention_mask, token_type_ids), got {runner!r}')
        self.model = model
        self.backend = backend
        self.num_threads = num_threads
        self.options = (options or ReadOptions()).with_overrides(settings)
        self._runner: Optional[Runner] = runner
        self.calibrator = calibrator
        self._find_calibrator = calibrator is None and calibrate and runner is None
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
                if self._find_calibrator:
                    self.calibrator = calibration_for(self.model_path)
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
        batch_size = self.options.with_overrides(batch_size=batch_size).batch_size
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
    def read(self, questions: Sequence[str], contexts: Sequence[Sequence[str]],
             context_ids: Optional[Sequence[Optional[Sequence[Optional[str]]]]] = None,
             context_titles: Optional[Sequence[Sequence[Optional[str]]]] = None,
             context_cosines: Optional[Sequence[Sequence[Optional[float]]]] = None,
             **overrides: Any) -> ReadResult:
        """The ``top_k`` best answers of each question over its contexts, best first, with the windows and logits
        they came from.

        :param questions: non-empty question texts.
        :param contexts: ``contexts[i]``: the texts to search for ``questions[i]`` (any length: long ones are
            windowed; empty ones are skipped). Windows of all questions share batches.
        :param context_ids: optional ids aligned with ``contexts``, copied into :attr:`Answer.context_id`.
        :param context_titles: optional, aligned with ``contexts``: what each is about (its title, or the FAQ
            question it answers; ``None`` for none): evidence of whether the question is covered at all
            (``title_coverage`` of :func:`covidqa.reader.confidence.answer_features`).
        :param context_cosines: optional, aligned with ``contexts``: the retrieval cosine of each with the question
            (``retrieval_cosine``; ``None`` for unknown).
        :param overrides: :class:`~covidqa.reader.options.ReadOptions` settings for this call (``None``: the
            reader's own).
        :returns: :class:`ReadResult`: ``answers[i]`` holds 1..top_k :class:`Answer` objects (after the no-answer
            when a calibrated reader trusts none of them), or the single no-answer when no span reaches
            ``no_answer_threshold`` (score 1.0 when there is no non-empty context).
        :raises ValueError: for malformed inputs or a bad setting, naming it.

        The steps: :meth:`_pairs` (check the inputs, one pair per non-empty context) -> :func:`encode_pairs`
        (windows) -> :meth:`window_logits` (model calls) -> :func:`covidqa.reader.decoding.decode_spans` (candidate
        spans per question) -> :func:`~covidqa.reader.ranking.lexical_priors` -> :func:`~covidqa.reader.ranking.rank`.

        Example: ``reader.read(['What is the incubation period?'], [[article_text]], top_k=3).answers[0]``
        """
        options = self.options.with_overrides(overrides)
        pair_q, pair_c, pair_owner = self._pairs(questions, contexts, context_ids)
        if not pair_q:
            return ReadResult([[Answer('', 1.0, -1, -1)] for _ in questions],
                              QAWindows([], [], [], [], np.zeros(0, np.int64)), [], [])
        self.load()
        windows = encode_pairs(self._tokenizer, pair_q, pair_c, options.max_seq_length, options.doc_stride,
                               options.max_query_length, mark_question_words=self.marks_question_words)
        logits = self.window_logits(windows, options.batch_size)

        no_answer_threshold = options.no_answer_threshold
        if no_answer_threshold is None:
            no_answer_threshold = 0.0 if self.calibrator is not None else DEFAULT_NO_ANSWER_THRESHOLD
        owners = [pair_owner[int(p)][0] for p in windows.pair]
        norm_start, norm_end = question_normalisers(logits, windows.context_mask, owners, len(questions))
        per_question: List[List[int]] = [[] for _ in questions]
        for w, qi in enumerate(owners):
            per_question[qi].append(w)
        results = []
        for qi, ws in enumerate(per_question):
            decoded = decode_spans(
                [logits[w] for w in ws], [windows.offsets[w] for w in ws], [windows.context_mask[w] for w in ws],
                (norm_start[qi], norm_end[qi]), top_k=options.candidates(),
                max_answer_length=options.max_answer_length, no_answer_threshold=no_answer_threshold,
                windows=ws, contexts=[pair_owner[int(windows.pair[w])][1] for w in ws])
            scores = [c.score for c in decoded.candidates]
            if options.lexical_weight > 0 and decoded.candidates:
                scores = lexical_priors(questions[qi], contexts[qi], decoded.candidates, scores,
                                        options.lexical_weight)
            ids = context_ids[qi] if context_ids is not None else None
            # a calibrated reader re-ranks a few more by confidence (the source's coverage can change the order)
            depth = max(options.top_k, RERANKED) if self.calibrator is not None else options.top_k
            answers = rank(decoded, scores, contexts[qi], ids, depth, options.overlap_threshold)
            titles = context_titles[qi] if context_titles is not None else None
            cosines = context_cosines[qi] if context_cosines is not None else None
            results.append(self._decide(questions[qi], contexts[qi], titles, cosines, decoded, answers, options))
        return ReadResult(results, windows, logits, pair_owner)

    def _decide(self, question: str, contexts: Sequence[str], titles: Optional[Sequence[Optional[str]]],
                cosines: Optional[Sequence[Optional[float]]], decoded, answers: List[Answer],
                options: ReadOptions) -> List[Answer]:
        """Each answer gets its :attr:`Answer.evidence` (:func:`covidqa.reader.confidence.answer_features`). With a
        calibrator its score becomes its probability of being right, the contexts are re-ranked by their best
        answer's (answers of one context keep the reader's order), the answers are cut to ``top_k``, and when the best is under the confidence threshold the result is "no answer" (scored 1 - that
        probability) followed by the answers it did not trust. Without one: ``answers`` as ranked."""
        for a in answers:
            if a.candidate is not None:
                title = titles[a.context_index] if titles is not None else None
                cosine = cosines[a.context_index] if cosines is not None else None
                a.evidence = answer_features(question, contexts, decoded, a.candidate, a.span_score, title, cosine)
        calibrator = self.calibrator
        if calibrator is None:
            return answers
        for a in answers:
            if a.evidence is not None:
                a.score = calibrator.probability(a.evidence)
        # contexts by their most likely right answer (the source's evidence decides between contexts); within a
        # context the reader's span order stays (re-ranked by confidence there, F1 fell: TRUST_RESULTS.md)
        best_of: Dict[int, float] = {}
        for a in answers:
            best_of[a.context_index] = max(best_of.get(a.context_index, 0.0), a.score)
        answers = sorted(answers, key=lambda a: -best_of[a.context_index])[:options.top_k]
        threshold = calibrator.threshold if options.confidence_threshold is None else options.confidence_threshold
        best = answers[0]
        if not best.is_no_answer and best.score < threshold:
            return [no_answer(1.0 - best.score)] + answers
        return answers

    @staticmethod
    def _pairs(questions, contexts, context_ids) -> Tuple[List[str], List[str], List[Tuple[int, int]]]:
        """Checks the inputs of :meth:`read`; returns the (question, context) pairs to read, one per
        non-empty context, and each pair's ``(question index, context index)``."""
        if isinstance(questions, str):
            raise ValueError('questions must be a list of strings, one question: [question]')
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
