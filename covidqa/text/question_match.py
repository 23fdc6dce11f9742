"""Which context tokens repeat a word of the question (DrQA's "exact match" feature, for a BERT-style reader).

A reader trained on ~1,300 questions has little data to learn where the question's words reappear in the context.
This module marks those tokens so the model sees it directly: the reader gives marked context tokens the token type
:data:`QUESTION_WORD_TYPE` (2) instead of 1, which needs a model whose ``token_type_embeddings`` have 3 rows
(:func:`add_question_word_type` grows them; a trained reader keeps ``type_vocab_size=3`` in its ``config.json``, and
that is how the reader knows to mark, see :func:`uses_question_word_type`).

Matching is on whole words of the WordPiece tokenization (a word = a token and its ``##`` continuations), lowercased
by the uncased tokenizer, ignoring stop words and punctuation; a word also matches when both words are at least 6
letters long and share their first 6 (a crude stem: "infected" ~ "infection", "transmitted" ~ "transmission").

Inputs: the question's and the context's token ids (no special tokens). Output: a bool array over the context's
tokens, True where the token belongs to a word of the question.

Example::

    marks = question_word_marks(tokenizer, question_ids, context_ids)   # bool, len(context_ids)
    token_type_ids[context_positions] = np.where(marks, QUESTION_WORD_TYPE, 1)
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

QUESTION_WORD_TYPE = 2
STEM_LENGTH = 6
TokenIds = Union[Sequence[int], np.ndarray]  # token ids, a list or a 1-D integer array

STOP_WORDS = frozenset('''
a about above after again against all am an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers herself him
himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other
our ours ourselves out over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which while who whom why will
with would you your yours yourself yourselves also may might must shall upon via per within without among
'''.split())


def _word_keys(tokens: Sequence[str]) -> Tuple[List[str], np.ndarray]:
    """``(words, word_of_token)``: the words of a WordPiece token list and, per token, the index of its word."""
    words: List[str] = []
    word_of = np.empty(len(tokens), dtype=np.int64)
    for i, tok in enumerate(tokens):
        if tok.startswith('##') and words:
            words[-1] += tok[2:]
        else:
            words.append(tok)
        word_of[i] = len(words) - 1
    return words, word_of


def _is_content(word: str) -> bool:
    return word not in STOP_WORDS and any(ch.isalnum() for ch in word)


def _keys(word: str) -> Tuple[str, ...]:
    return (word, word[:STEM_LENGTH] + '~') if len(word) >= STEM_LENGTH else (word,)


class QuestionWordMarker:
    """Marks context tokens that repeat a question word; caches each context's words (long articles are shared by
    many questions)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self._contexts: Dict[bytes, Tuple[List[str], np.ndarray]] = {}

    def _words(self, ids: np.ndarray) -> Tuple[List[str], np.ndarray]:
        key = np.asarray(ids, dtype=np.int64).tobytes()
        if key not in self._contexts:
            self._contexts[key] = _word_keys(self.tokenizer.convert_ids_to_tokens([int(i) for i in ids]))
        return self._contexts[key]

    def marks(self, question_ids: TokenIds, context_ids: TokenIds) -> np.ndarray:
        """Bool array over ``context_ids``: True on tokens of a word that is (or shares a stem with) a question
        content word."""
        q_words, _ = _word_keys(self.tokenizer.convert_ids_to_tokens([int(i) for i in question_ids]))
        wanted = {k for w in q_words if _is_content(w) for k in _keys(w)}
        words, word_of = self._words(np.asarray(context_ids))
        hit = np.fromiter((_is_content(w) and any(k in wanted for k in _keys(w)) for w in words),
                          dtype=bool, count=len(words))
        return hit[word_of] if len(word_of) else np.zeros(0, dtype=bool)


def question_word_marks(tokenizer, question_ids: TokenIds, context_ids: TokenIds) -> np.ndarray:
    """One-off :meth:`QuestionWordMarker.marks`."""
    return QuestionWordMarker(tokenizer).marks(question_ids, context_ids)


def uses_question_word_type(model_or_dir) -> bool:
    """True when the model (a transformers model, or a directory with ``config.json``) has the extra token type."""
    config = getattr(model_or_dir, 'config', None)
    if config is not None:
        return int(getattr(config, 'type_vocab_size', 2)) > QUESTION_WORD_TYPE
    path = Path(str(model_or_dir)) / 'config.json'
    if not path.is_file():
        return False
    import json

    return int(json.loads(path.read_text()).get('type_vocab_size', 2)) > QUESTION_WORD_TYPE


def add_question_word_type(model) -> bool:
    """Give ``model`` (a BERT-style transformers model) a third token type for question words, initialised as a copy
    of the context type (so the model starts out unchanged). Returns False when it already has one."""
    import torch

    if uses_question_word_type(model):
        return False
    base = getattr(model, model.base_model_prefix)
    old = base.embeddings.token_type_embeddings
    new = torch.nn.Embedding(QUESTION_WORD_TYPE + 1, old.embedding_dim)
    with torch.no_grad():
        new.weight[: old.num_embeddings] = old.weight
        new.weight[QUESTION_WORD_TYPE] = old.weight[1]
    base.embeddings.token_type_embeddings = new
    model.config.type_vocab_size = QUESTION_WORD_TYPE + 1
    return True
