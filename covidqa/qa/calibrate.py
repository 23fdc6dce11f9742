"""Fitting a reader's confidence (:class:`covidqa.reader.confidence.Calibrator`) on held-out questions, and the
held-out questions themselves (``make reader-calibrate``; ``make bench-abstain`` scores the other half).

Every set comes in two halves that share nothing (:func:`held_out_sets` with ``part='calibrate'`` or
``'evaluate'``); none was trained on (stage 3, :mod:`covidqa.qa.no_answer`, took SQuAD 2.0's ``train`` part):

- ``squad2``: SQuAD 2.0 dev questions against their paragraph (its ``calibrate`` / ``evaluate`` articles), about
  half of them unanswerable; right = token F1 >= 0.5 against a gold answer;
- ``covid-paragraphs``: COVID-QA paragraph-dev questions against their own paragraph (answerable) and against a
  paragraph of another article (not), split by article;
- ``faq``: questions read against the 10 best FAQ entries (hybrid retrieval through the real
  :class:`~covidqa.index.store.DocumentStore` and the Flow's int8 ``[CLS]`` embedder, as ``/answer`` does):
  reworded FAQ questions (:func:`reword`; covered: right = the answer comes from the question's own entry) and
  questions the FAQ does not cover (COVID-QA article questions, SQuAD v1.1 dev, SQuADShifts; never right).

:func:`fit_calibration` reads the ``calibrate`` half with the reader (``calibrate=False``: its raw evidence of the
:data:`~covidqa.reader.reader.RERANKED` best candidates of each question), fits the calibrator on every candidate
(the served reader ranks them by its probability), picks the threshold on each question's best, stores the
calibrator beside the reader and plots a reliability diagram of the ``evaluate`` half.

Example::

    calibrator = fit_calibration('workspace/models/reader', data_dir='/data')
    calibrator.report['ece'], calibrator.threshold        # 0.02, 0.41
"""
from __future__ import annotations

import csv
import random
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from covidqa.data.records import QARecord, read_qa_file
from covidqa.paths import FAQ_FILE, PathLike
from covidqa.paths import data_dir as default_data_dir
from covidqa.qa.no_answer import SQUAD2_CALIBRATE, SQUAD2_EVALUATE, other_article_negatives, squad2_parts
from covidqa.reader.confidence import Calibrator, expected_calibration_error, reliability_bins
from covidqa.reader.metrics import f1_score

__all__ = ['HeldOutSet', 'Outcome', 'faq_questions', 'faq_rows', 'fit_calibration', 'held_out_sets', 'read_set',
           'reword']

PARTS = (SQUAD2_CALIBRATE, SQUAD2_EVALUATE)
FAQ_LIMIT = 10  # matches /answer reads (the Flow's default limit)
RIGHT_F1 = 0.5


@dataclass
class HeldOutSet:
    """Questions, the contexts each is read against, and what counts as right: ``gold[i]`` the gold answer texts
    (empty: nothing in the contexts answers it) or, with ``gold_ids``, the id of the context that answers it
    (``None``: none does)."""

    name: str
    questions: List[str]
    contexts: List[List[str]]
    gold: List[Tuple[str, ...]] = field(default_factory=list)
    context_ids: Optional[List[List[str]]] = None
    context_titles: Optional[List[List[Optional[str]]]] = None  # what each context is about (the FAQ question)
    # the embedder's cosine of the question and the FAQ question whose answer each context is (as /answer gives it)
    context_cosines: Optional[List[List[Optional[float]]]] = None
    gold_ids: Optional[List[Optional[str]]] = None
    kinds: List[str] = field(default_factory=list)  # per question: where it came from

    def answerable(self, i: int) -> bool:
        if self.gold_ids is not None:
            return self.gold_ids[i] is not None
        return any(self.gold[i])

    def is_right(self, i: int, answer: str, context_id: Optional[str]) -> bool:
        """Whether ``answer`` (from the context with ``context_id``) is a right answer to question ``i``."""
        if not answer or not self.answerable(i):
            return False
        if self.gold_ids is not None:
            return context_id == self.gold_ids[i]
        return f1_score(answer, list(self.gold[i])) >= RIGHT_F1


def _split(items: Sequence, part: str) -> List:
    keep = 0 if part == SQUAD2_CALIBRATE else 1
    return [x for i, x in enumerate(items) if i % 2 == keep]


def _paragraph_set(records: Sequence[QARecord], name: str) -> HeldOutSet:
    own = [r for r in records if r.answer_text]
    others = other_article_negatives(own, 1.0, seed=7)
    both = own + others
    return HeldOutSet(name, [r.question for r in both], [[r.context] for r in both],
                      [tuple(g for g in r.gold_answers if g) for r in both],
                      kinds=['own paragraph'] * len(own) + ['other article'] * len(others))


_REWORDINGS = (
    lambda q: re.sub(r'[^\w\s-]', '', q).lower(),
    lambda q: 'can you tell me ' + q[0].lower() + q[1:],
    lambda q: re.sub(r'\bCOVID-19\b', 'corona', re.sub(r'\bthe virus that causes COVID-19\b', 'the coronavirus', q)),
    lambda q: 'question: ' + re.sub(r'\?$', '', q).lower() + ' ?',
)


def reword(question: str, i: int) -> str:
    """A rewording of an FAQ question (one of four fixed rewritings by ``i``: lowercased without punctuation,
    "can you tell me ...", COVID-19 -> "corona", "question: ... ?")."""
    return _REWORDINGS[i % len(_REWORDINGS)](question.strip())


def faq_rows(root: Path) -> List[Dict[str, str]]:
    """The FAQ's entries (``question``, ``answer``, ...; those with both); entry ``i`` is indexed with id ``str(i)``."""
    with open(root / FAQ_FILE, newline='', encoding='utf-8') as handle:
        return [row for row in csv.DictReader(handle) if row['question'].strip() and row['answer'].strip()]


def faq_questions(root: Path, part: str) -> List[Tuple[str, Optional[str], str]]:
    """The ``part`` half of the questions asked of the FAQ: ``(question, id of the entry that answers it or None,
    kind)``: reworded FAQ questions (covered) and 240 questions it does not cover (120 COVID-QA article questions, 60
    SQuAD v1.1 dev, 60 SQuADShifts new-wiki; a fixed random choice), halves by position."""
    faq = faq_rows(root)
    covered = [(reword(row['question'], i), str(i), 'reworded FAQ question') for i, row in enumerate(faq)]
    rng = random.Random(11)
    articles = read_qa_file(root / 'covid_qa_deepset/covid-qa-dev.json')
    squad = read_qa_file(root / 'squad_v1.1/derived/dev-v1.1.from_explorer.json')
    shifts = read_qa_file(root / 'squadshifts/new_wiki_v1.0.json')
    uncovered = ([(r.question, None, 'COVID-QA article question') for r in rng.sample(list(articles), 120)]
                 + [(r.question, None, 'SQuAD question') for r in rng.sample(list(squad), 60)]
                 + [(r.question, None, 'SQuADShifts question') for r in rng.sample(list(shifts), 60)])
    return _split(covered, part) + _split(uncovered, part)


def _flow_embedder(threads: int = 2):
    """The embedder as the Flow runs it (flow.yml: version 0, the shipped ``[CLS]`` embedder, ONNX int8, 50 tokens
    a text)."""
    from covidqa.embedding.encoder import Embedder
    from covidqa.models.loading import DEFAULT_EMBEDDER

    return Embedder(DEFAULT_EMBEDDER, backend='onnx-int8', pooling='cls', num_threads=threads, max_length=50)


def _faq_set(root: Path, part: str, embedder_threads: int = 2) -> HeldOutSet:
    from docarray.typing import ID

    from covidqa.docs import DocList, StoredDoc
    from covidqa.index import hybrid
    from covidqa.index.store import DocumentStore

    faq = faq_rows(root)
    chosen = faq_questions(root, part)
    embedder = _flow_embedder(embedder_threads)
    store = DocumentStore(tempfile.mkdtemp(prefix='covidqa-calibrate-'), synchronous='NORMAL')
    try:
        vectors = embedder.embed_texts([row['question'] for row in faq])
        store.upsert(DocList[StoredDoc]([StoredDoc(id=ID(str(i)), text=row['question'], answer=row['answer'],
                                                   embedding=v) for i, (row, v) in enumerate(zip(faq, vectors))]))
        texts = [q for q, _, _ in chosen]
        queries = embedder.embed_texts(texts)
        found = hybrid.search(store, queries, FAQ_LIMIT, texts=texts, retrieval='hybrid')
    finally:
        store.close()
    return HeldOutSet('faq', texts, [[d.answer or d.text for d in docs] for docs, _ in found],
                      context_ids=[[d.id for d in docs] for docs, _ in found],
                      context_titles=[[d.text for d in docs] for docs, _ in found],
                      context_cosines=[hybrid.cosines(q, [d.embedding for d in docs]).tolist()
                                       for q, (docs, _) in zip(queries, found)],
                      gold_ids=[g for _, g, _ in chosen], kinds=[k for _, _, k in chosen])


def held_out_sets(part: str, data_dir: Optional[PathLike] = None, faq: bool = True,
                  squad2_limit: Optional[int] = None) -> List[HeldOutSet]:
    """The ``part`` (``'calibrate'`` or ``'evaluate'``) half of every held-out set (see the module docstring);
    ``squad2_limit``: at most that many SQuAD 2.0 questions (a fixed random choice)."""
    if part not in PARTS:
        raise ValueError(f'part must be one of {PARTS}, got {part!r}')
    root = Path(data_dir) if data_dir else default_data_dir()
    squad2 = squad2_parts(root)[part]
    if squad2_limit is not None and len(squad2) > squad2_limit:
        squad2 = random.Random(5).sample(squad2, squad2_limit)
    sets = [HeldOutSet('squad2', [r.question for r in squad2], [[r.context] for r in squad2],
                       [tuple(g for g in r.gold_answers if g) for r in squad2],
                       kinds=['answerable' if r.answer_text else 'unanswerable' for r in squad2])]
    paragraphs = read_qa_file(root / 'covid_qa_paragraphs/qa_dev.json')
    titles = sorted({r.title or '' for r in paragraphs})
    mine = set(_split(titles, part))
    sets.append(_paragraph_set([r for r in paragraphs if (r.title or '') in mine], 'covid-paragraphs'))
    if faq:
        sets.append(_faq_set(root, part))
    return sets


@dataclass
class Outcome:
    """The reader's top answer to one question of a set, and whether it is right."""

    set: str
    kind: str
    answerable: bool
    answer: str
    right: bool
    score: float
    abstained: bool
    f1: float
    evidence: Dict[str, float]


def read_set(reader, held: HeldOutSet, **overrides) -> List[Outcome]:
    """Read ``held`` with ``reader`` (:class:`covidqa.reader.reader.ExtractiveReader`); one :class:`Outcome` per
    question: its best answer (the first answer that is not "no answer"), its score, and whether the reader
    abstained (its first answer is "no answer")."""
    result = reader.read(held.questions, held.contexts, held.context_ids, held.context_titles, held.context_cosines,
                         **overrides)
    out = []
    for i, answers in enumerate(result.answers):
        best = next((a for a in answers if not a.is_no_answer), answers[0])
        gold = [g for g in held.gold[i]] if held.gold else []
        f1 = f1_score(best.answer, gold) if gold and best.answer else 0.0
        out.append(Outcome(held.name, held.kinds[i] if held.kinds else '', held.answerable(i), best.answer,
                           held.is_right(i, best.answer, best.context_id), best.score, answers[0].is_no_answer,
                           f1, dict(best.evidence or {})))
    return out


def plot_reliability(probabilities: Sequence[float], right: Sequence[bool], path: PathLike, title: str) -> None:
    """A reliability diagram (share right per confidence bin against the diagonal, bin sizes under it)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    bins = reliability_bins(probabilities, right)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6), gridspec_kw={'height_ratios': [3, 1]}, sharex=True)
    top.plot([0, 1], [0, 1], '--', color='grey', label='perfectly calibrated')
    top.plot([b['confidence'] for b in bins], [b['right'] for b in bins], 'o-', label='this reader')
    top.set_ylabel('share of answers that are right')
    top.set_title(title, fontsize=10)
    top.legend(loc='upper left')
    bottom.bar([(b['low'] + b['high']) / 2 for b in bins], [b['count'] for b in bins], width=0.09)
    bottom.set_xlabel('confidence (calibrated score)')
    bottom.set_ylabel('answers')
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fit_calibration(model: Optional[PathLike] = None, data_dir: Optional[PathLike] = None,
                    output: Optional[PathLike] = None, backend: str = 'onnx-int8', reader_sha256: str = '',
                    squad2_limit: Optional[int] = None, plot: Optional[PathLike] = None) -> Calibrator:
    """Fit the confidence of the reader ``model`` (default: the one the service serves) on the ``calibrate``
    half of :func:`held_out_sets` and save it to ``output`` (default: ``calibration.json`` beside the reader).
    ``plot``: where to draw the reliability diagram (of the ``evaluate`` half, which the fit never saw)."""
    from covidqa.reader.confidence import CALIBRATION_FILE
    from covidqa.reader.reader import RERANKED, ExtractiveReader

    reader = ExtractiveReader(model, backend=backend, calibrate=False).load()
    per_question: List[List[Tuple[Dict[str, float], bool]]] = []  # each question's candidates: (evidence, right)
    per_set = {}
    for held in held_out_sets(SQUAD2_CALIBRATE, data_dir, squad2_limit=squad2_limit):
        result = reader.read(held.questions, held.contexts, held.context_ids, held.context_titles,
                             held.context_cosines, top_k=RERANKED, no_answer_threshold=0.0)
        found = [[(dict(a.evidence or {}), held.is_right(i, a.answer, a.context_id)) for a in answers
                  if not a.is_no_answer] for i, answers in enumerate(result.answers)]
        per_question += [c for c in found if c]
        per_set[held.name] = len(held.questions)
        print(f'calibrate: {held.name}: {len(held.questions)} questions, a right answer among the '
              f'{RERANKED} best for {sum(any(r for _, r in c) for c in found)}', flush=True)
    rows = [evidence for c in per_question for evidence, _ in c]
    labels = [right for c in per_question for _, right in c]
    # every candidate is a row (the served reader ranks them by this probability); the threshold is chosen on
    # each question's best by it, as the served reader decides
    calibrator = Calibrator.fit(rows, labels, threshold=0.5, reader_sha256=reader_sha256)
    best = [max(c, key=lambda er: calibrator.logit(er[0])) for c in per_question]
    calibrator.refit_best([e for e, _ in best], [r for _, r in best])
    calibrated = ExtractiveReader(model, backend=backend, calibrator=calibrator).load()
    probabilities, right = [], []
    for held in held_out_sets(SQUAD2_EVALUATE, data_dir, squad2_limit=squad2_limit):
        for o in read_set(calibrated, held, confidence_threshold=0.0):
            probabilities.append(o.score)
            right.append(o.right)
    calibrator.report = {'fitted_on': per_set, 'candidates': len(rows), 'right_share': sum(labels) / len(labels),
                         'evaluated_on': len(probabilities),
                         'ece': round(expected_calibration_error(probabilities, right), 4),
                         'bins': reliability_bins(probabilities, right)}
    target = Path(output) if output else Path(str(calibrated.model_path)) / CALIBRATION_FILE
    calibrator.save(target)
    print(f'calibrator: threshold {calibrator.threshold:.3f}, ECE {calibrator.report["ece"]:.3f} on '
          f'{len(probabilities)} held-out answers; features {list(calibrator.features)}; saved to {target}',
          flush=True)
    if plot:
        plot_reliability(probabilities, right, plot, f'Reliability on {len(probabilities)} held-out answers '
                                                     f'(ECE {calibrator.report["ece"]:.3f})')
    return calibrator
