"""The reader's settings, declared once (:class:`ReadOptions`): :class:`covidqa.reader.reader.ExtractiveReader` is
built with them, every ``read`` may override them, the Reader Executor takes them from ``uses_with``, and
``/answer``'s request parameters (:mod:`executors.parameters`) check them with the same bounds.

Example::

    options = ReadOptions(top_k=3)
    options.with_overrides(max_seq_length=256).max_seq_length      # 256
    ReadOptions(max_seq_length=8)    # OptionsError: parameter 'max_seq_length' must be an integer between 32 and 512, got 8
"""
from __future__ import annotations

from typing import Annotated, Optional

from covidqa.options import Options, integer, number
from covidqa.reader.windows import DEFAULT_DOC_STRIDE, DEFAULT_MAX_QUERY_LENGTH, DEFAULT_MAX_SEQ_LENGTH

# Spans below this probability are not answers. Low on purpose: COVID-QA answers are long (median ~12 tokens), so
# even right answers often score 0.05-0.3; 0.01 only filters spans the model finds very unlikely.
DEFAULT_NO_ANSWER_THRESHOLD = 0.01
# How much a span outside the context sentences that best match the question's words is discounted
# (:mod:`covidqa.text.lexical`): score * exp(-weight * (1 - match)). Off by default: re-measured on held-out data
# with the shipped reader (benchmarks/TRUST_RESULTS.md), 20 costs 3.2 F1 points on COVID-QA paragraphs and gains
# 0.3 on whole articles (it was chosen on full-article dev with earlier readers: benchmarks/READER_RESULTS.md).
DEFAULT_LEXICAL_WEIGHT = 0.0
# top_k answers are distinct: a span sharing more than this fraction of its own characters, or of a better answer's,
# with a better answer of the same context is dropped (haystack's ExtractiveReader default); 1.0 keeps near-copies
# ("from person-to-person." and "person-to-person"). The reader's best answer is never dropped (a calibrated reader
# then re-ranks contexts, so which answer comes first can depend on it there).
DEFAULT_OVERLAP_THRESHOLD = 0.01
DEFAULT_MAX_ANSWER_LENGTH = 64
DEFAULT_BATCH_SIZE = 16


class ReadOptions(Options):
    """How the reader reads: windows, spans, priors and how many answers (see :mod:`covidqa.reader.reader`)."""

    top_k: Annotated[int, integer(1, 1000, 'answers per question')] = 1
    max_answer_length: Annotated[int, integer(1, 512, 'longest answer, in tokens')] = DEFAULT_MAX_ANSWER_LENGTH
    no_answer_threshold: Annotated[Optional[float], number(0.0, 1.0, 'spans whose probability within their window '
                                                                      'is below this are dropped; none left: "no '
                                                                      'answer" (default: 0 for a calibrated reader, '
                                                                      'whose confidence decides, else 0.01)')
                                   ] = None
    max_seq_length: Annotated[int, integer(32, 512, 'reader window length, in tokens (question + context)')
                              ] = DEFAULT_MAX_SEQ_LENGTH
    doc_stride: Annotated[int, integer(0, 512, 'overlap of consecutive windows of a long context, in tokens')
                          ] = DEFAULT_DOC_STRIDE
    max_query_length: Annotated[int, integer(4, 512, 'questions are cut to this many tokens')
                                ] = DEFAULT_MAX_QUERY_LENGTH
    batch_size: Annotated[int, integer(1, 1024, 'windows per model call')] = DEFAULT_BATCH_SIZE
    lexical_weight: Annotated[float, number(0.0, 100.0, 'discount of spans outside the context sentences that best '
                                                         "match the question's words (0 = the model alone)")
                              ] = DEFAULT_LEXICAL_WEIGHT
    overlap_threshold: Annotated[float, number(0.0, 1.0, 'drop a span sharing more than this fraction of its '
                                                          'characters with a better answer of the same context '
                                                          '(1 = keep near-copies)')] = DEFAULT_OVERLAP_THRESHOLD
    confidence_threshold: Annotated[Optional[float], number(0.0, 1.0, 'a calibrated reader says "no answer" when '
                                                                       'its best answer is less likely than this to '
                                                                       'be right (default: the threshold chosen on '
                                                                       'its calibration data; 0 = always answer)')
                                    ] = None
    span_candidates: Annotated[Optional[int], integer(1, 10_000, 'spans decoded per window before the lexical '
                                                                  'prior and the overlap filter re-rank them '
                                                                  '(default: 20 or 4 x top_k; 100 or 20 x top_k '
                                                                  'with the overlap filter on)')] = None

    def candidates(self) -> int:
        """How many spans to decode per window: :attr:`span_candidates`, else the rule in its description (with
        ``overlap_threshold`` < 1 most of a window's best spans are near-copies of its best one, so ``top_k`` > 1
        decodes more)."""
        if self.span_candidates is not None:
            return self.span_candidates
        if self.top_k == 1 or self.overlap_threshold >= 1.0:
            return max(self.top_k * 4, 20)
        return max(self.top_k * 20, 100)


# what a request to /answer may override (the rest is the reader's configuration)
REQUEST_OPTIONS = ('top_k', 'max_answer_length', 'no_answer_threshold', 'confidence_threshold', 'max_seq_length', 'doc_stride', 'batch_size',
                   'lexical_weight', 'overlap_threshold')
