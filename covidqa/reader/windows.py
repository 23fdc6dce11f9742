"""Step 1 of reading (:class:`covidqa.reader.reader.ExtractiveReader`): (question, context) pairs -> token windows.

Every pair is tokenized as ``[CLS] question [SEP] context [SEP]``; a context longer than one window of
``max_seq_length`` tokens is split into overlapping windows (``doc_stride`` = overlap in tokens between consecutive
windows, as in HuggingFace ``run_qa.py``), each keeping the character offsets of its tokens. For a model trained
with the question-word token type (:mod:`covidqa.text.question_match`) context tokens that repeat a question word get
token type 2 instead of 1. :func:`label_windows` gives the token labels of an answer's character span (training).

Example::

    windows = encode_pairs(tokenizer, ['Where did it start?'], ['It started in Wuhan.'])
    windows.input_ids[0]          # int64 ids of [CLS] where did it start ? [SEP] it started in wuhan . [SEP]
    windows.offsets[0][7]         # (0, 2): the characters of 'It'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from covidqa.text.question_match import QUESTION_WORD_TYPE, QuestionWordMarker

__all__ = ['QAWindows', 'encode_pairs', 'label_windows', 'DEFAULT_MAX_SEQ_LENGTH', 'DEFAULT_DOC_STRIDE',
           'DEFAULT_MAX_QUERY_LENGTH']

DEFAULT_MAX_SEQ_LENGTH = 384
DEFAULT_DOC_STRIDE = 128
DEFAULT_MAX_QUERY_LENGTH = 64


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
    (:mod:`covidqa.text.question_match`; for models trained with that third type).
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
