"""Answer feedback: people mark the answers ``/answer`` gave right or wrong, and point at the right span.

Two append-only JSON-lines files in the feedback directory (``$COVIDQA_HOME/feedback``), next to the search labels
(:mod:`covidqa.feedback.store`):

- ``answers.jsonl``, the answer log: one line per question answered (:meth:`AnswerFeedback.record`): its id, the
  question, the answers shown in order (``answer``, ``start``, ``end``, ``context_id``, ``no_answer``, ``score``)
  and the text of every passage read (``contexts``: id -> text), so that a label can be checked against what was
  shown and a correction against the passage it marks. Written without ``fsync`` (it is on the path of every
  answer: a record lost to a crash only means a later label for it is refused as never answered); the last
  :data:`MAX_REMEMBERED` answered questions are kept in memory and read back from the file on start, and past
  :data:`MAX_LOG_BYTES` the file is rewritten (atomically) with those alone, so it stays bounded.
- ``answer_labels.jsonl``, the labels: one line per verdict, ``fsync``'ed before :meth:`AnswerFeedback.add` returns.

A label (:meth:`AnswerFeedback.add`) names the answered question (``query_id``), the answer shown (its position in
the reply, ``answer``), the ``verdict`` (``'right'`` or ``'wrong'``) and optionally the right span: a passage that was
read for the question (``correct_context_id``) and character offsets in its text (``correct_start`` <
``correct_end``). Everything is checked before anything is written; a bad label raises :class:`AnswerFeedbackError`
naming the problem (a question never answered, an answer position not shown, a passage not read, offsets outside
the passage or marking only whitespace, a right verdict with a correction), and nothing is stored.

What the labels teach (:meth:`AnswerFeedback.squad`): SQuAD JSON, one paragraph per passage, as haystack's
``/export-feedback``: an answer marked right is a question with that answer; a correction is the question with the
marked span; a wrong answer without a correction is an unanswerable question for that passage
(``is_impossible``). :meth:`AnswerFeedback.accuracy` reports the share of labelled answers that were right.

No jina here; :class:`executors.reader.Reader` serves ``/answer_feedback``, ``/export_feedback`` and
``/eval_feedback`` over it. Example::

    feedback = AnswerFeedback('workspace/feedback')
    feedback.record('q1', 'How long is the incubation period?',
                    [{'answer': '5 days', 'start': 30, 'end': 36, 'context_id': 'p1'}], {'p1': passage_text})
    feedback.add('q1', answer=0, verdict='wrong', correct_context_id='p1', correct_start=30, correct_end=47)
    feedback.squad()      # {'version': 'covidqa-answer-feedback', 'data': [...]}
    feedback.accuracy()   # {'labels': 1, 'right': 0, 'wrong': 1, 'corrected': 1, 'accuracy': 0.0}
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from covidqa.paths import PathLike, feedback_dir
from covidqa.runtime.atomic import atomic_write_text
from covidqa.runtime.jsonl_log import append_line, append_lines, read_lines, repair_tail

ANSWERS_FILE = 'answers.jsonl'
LABELS_FILE = 'answer_labels.jsonl'
VERDICTS = ('right', 'wrong')
MAX_REMEMBERED = 2_000  # answered questions a label can refer to (the newest; each ~20 passages, up to ~20 KB)
MAX_LOG_BYTES = 64 << 20  # past this the answer log is rewritten with the remembered records only
MAX_LABELS = 1_000_000  # labels kept: a store past it refuses more (bounded on disk)


class AnswerFeedbackError(ValueError):
    """A label that cannot be stored; the message names the problem."""


class AnswerFeedback:
    """The answer log and the answer labels under ``directory`` (default ``$COVIDQA_HOME/feedback``); thread-safe,
    one writing process (the reader)."""

    def __init__(self, directory: Optional[PathLike] = None, max_remembered: int = MAX_REMEMBERED,
                 max_labels: int = MAX_LABELS, max_log_bytes: int = MAX_LOG_BYTES):
        self.directory = Path(directory) if directory else feedback_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.answers_path = self.directory / ANSWERS_FILE
        self.labels_path = self.directory / LABELS_FILE
        self.max_remembered, self.max_labels, self.max_log_bytes = max_remembered, max_labels, max_log_bytes
        self._lock = threading.Lock()
        self._answered: 'OrderedDict[str, dict]' = OrderedDict()
        for path in (self.answers_path, self.labels_path):
            if path.exists():
                repair_tail(path)
        if self.answers_path.exists():
            for record in read_lines(self.answers_path)[0]:
                self._remember(record)
        self._labels: List[dict] = read_lines(self.labels_path)[0] if self.labels_path.exists() else []

    # ---- the answer log ------------------------------------------------------------------------------------------
    def _remember(self, record: dict) -> None:
        self._answered[record['query_id']] = record
        self._answered.move_to_end(record['query_id'])
        while len(self._answered) > self.max_remembered:
            self._answered.popitem(last=False)

    def record(self, query_id: str, question: str, answers: Sequence[Mapping], contexts: Mapping[str, str]) -> dict:
        """Log what ``/answer`` showed for question ``query_id``: ``answers`` in reply order (mappings with
        ``answer``, ``start``, ``end``, ``context_id``, ``no_answer``, ``score``) and ``contexts`` (the id and text
        of every passage read). Returns the record."""
        record = {'query_id': str(query_id), 'question': str(question or ''),
                  'answers': [{'answer': a.get('answer'), 'start': int(a.get('start', -1)), 'end': int(a.get('end', -1)),
                               'context_id': a.get('context_id'), 'no_answer': bool(a.get('no_answer')),
                               'score': float(a.get('score') or 0.0)} for a in answers],
                  'contexts': {str(k): str(v) for k, v in contexts.items() if k is not None},
                  'ts': time.time()}
        with self._lock:
            size = append_lines(self.answers_path, [record], durable=False)
            self._remember(record)
            if size > self.max_log_bytes:  # keep what a label can still refer to, drop the rest
                lines = ''.join(json.dumps(r, ensure_ascii=False, separators=(',', ':')) + '\n'
                                for r in self._answered.values())
                atomic_write_text(self.answers_path, lines)
        return record

    def answered(self, query_id: str) -> Optional[dict]:
        """The logged record of question ``query_id`` (None: never answered, or too long ago)."""
        with self._lock:
            return self._answered.get(str(query_id))

    # ---- labels --------------------------------------------------------------------------------------------------
    def check(self, query_id: str, answer: int = 0, verdict: str = '', correct_context_id: Optional[str] = None,
              correct_start: Optional[int] = None, correct_end: Optional[int] = None) -> dict:
        """The label record these arguments make, checked against the answer log (see the module docstring);
        raises :class:`AnswerFeedbackError` naming the problem."""
        shown = self.answered(query_id)
        if shown is None:
            raise AnswerFeedbackError(f'question {query_id!r} was never answered (or too long ago): label the '
                                      f'answers of a recent /answer reply by its document id')
        if verdict not in VERDICTS:
            raise AnswerFeedbackError(f'verdict must be one of {VERDICTS}, got {verdict!r}')
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(shown['answers']):
            raise AnswerFeedbackError(f'answer {answer!r} was not shown for question {query_id!r}: it had '
                                      f'{len(shown["answers"])} answer(s), numbered from 0')
        given = shown['answers'][answer]
        correction = (correct_context_id, correct_start, correct_end)
        record = {'query_id': shown['query_id'], 'question': shown['question'], 'answer_index': answer,
                  'answer': given, 'verdict': verdict, 'correction': None, 'ts': time.time()}
        if any(part is not None for part in correction):
            if verdict == 'right':
                raise AnswerFeedbackError('a right answer takes no correction: send verdict "wrong" with the right '
                                          'span')
            if any(part is None for part in correction):
                raise AnswerFeedbackError('a correction needs correct_context_id, correct_start and correct_end')
            context = shown['contexts'].get(str(correct_context_id))
            if context is None:
                raise AnswerFeedbackError(f'passage {correct_context_id!r} was not read for question {query_id!r}; '
                                          f'read: {sorted(shown["contexts"])[:10]}')
            start, end = int(correct_start), int(correct_end)  # type: ignore[arg-type]  # checked above
            if not 0 <= start < end <= len(context):
                raise AnswerFeedbackError(f'offsets [{start}, {end}) are outside passage {correct_context_id!r} '
                                          f'(0 to {len(context)} characters) or empty')
            if not context[start:end].strip():
                raise AnswerFeedbackError(f'offsets [{start}, {end}) of passage {correct_context_id!r} mark only '
                                          f'whitespace')
            record['correction'] = {'context_id': str(correct_context_id), 'start': start, 'end': end,
                                    'text': context[start:end]}
        needed = [given.get('context_id')] + ([record['correction']['context_id']] if record['correction'] else [])
        if given.get('no_answer'):  # a right "no answer" is about every passage read
            needed.extend(shown['contexts'])
        record['contexts'] = {c: shown['contexts'][c] for c in dict.fromkeys(needed) if c in shown['contexts']}
        return record

    def add(self, query_id: str, **label) -> dict:
        """Check (:meth:`check`) and store one label durably (``fsync``); returns ``{'labels', 'right', 'wrong',
        'corrected'}`` after it. Raises :class:`AnswerFeedbackError` (nothing stored) for a bad label or a full
        store."""
        record = self.check(query_id, **label)
        with self._lock:
            if len(self._labels) >= self.max_labels:
                raise AnswerFeedbackError(f'the answer label store is full ({self.max_labels} labels): export and '
                                          f'archive {self.labels_path} first')
            append_line(self.labels_path, record, durable=True)
            self._labels.append(record)
        return self.counts()

    def labels(self) -> List[dict]:
        with self._lock:
            return list(self._labels)

    def counts(self) -> Dict[str, int]:
        labels = self.labels()
        return {'labels': len(labels), 'right': sum(r['verdict'] == 'right' for r in labels),
                'wrong': sum(r['verdict'] == 'wrong' for r in labels),
                'corrected': sum(r['correction'] is not None for r in labels)}

    def accuracy(self) -> dict:
        """The share of labelled answers that were right (``None`` without labels), with the counts."""
        counts = self.counts()
        return {**counts, 'accuracy': round(counts['right'] / counts['labels'], 4) if counts['labels'] else None}

    def squad(self) -> dict:
        """The labels as SQuAD JSON (v2, with ``is_impossible``): one paragraph per passage labelled, every label a
        question of it (see the module docstring). A right verdict on a "no answer" says the passages read hold no
        answer: an unanswerable question for each of them; a wrong "no answer" without a correction teaches
        nothing and is left out."""
        paragraphs: Dict[tuple, dict] = {}  # (passage id, its text): a passage re-indexed with another text is new
        count = 0

        def question_of(context_id: str, label: dict, answer: Optional[dict]) -> None:
            nonlocal count
            context = label['contexts'].get(context_id)
            if context is None:
                return
            paragraph = paragraphs.setdefault((context_id, context),
                                              {'context': context, 'document_id': context_id, 'qas': []})
            count += 1
            paragraph['qas'].append({'id': f'{label["query_id"]}-{count}', 'question': label['question'],
                                     'answers': [answer] if answer else [], 'is_impossible': answer is None})

        for label in self.labels():
            given = label['answer']
            if label['correction']:
                c = label['correction']
                question_of(c['context_id'], label, {'text': c['text'], 'answer_start': c['start']})
            elif given.get('no_answer'):
                if label['verdict'] == 'right':
                    for context_id in label['contexts']:
                        question_of(context_id, label, None)
            elif label['verdict'] == 'right':
                question_of(given['context_id'], label, {'text': given['answer'], 'answer_start': given['start']})
            else:
                question_of(given['context_id'], label, None)
        return {'version': 'covidqa-answer-feedback',
                'data': [{'title': context_id, 'paragraphs': [paragraph]}
                         for (context_id, _), paragraph in paragraphs.items()]}


__all__ = ['ANSWERS_FILE', 'LABELS_FILE', 'VERDICTS', 'AnswerFeedback', 'AnswerFeedbackError']
