"""The shipped embedder's recipe: teach all-MiniLM-L6-v2's ``[CLS]`` vector what its mean pooling knows.

all-MiniLM-L6-v2 was trained for mean pooling; its ``[CLS]`` vector, which this service embeds with, is a weaker
sentence vector (``models/embedder/MODEL_CARD.md``). Two steps close the gap:

1. :func:`distill_embedder`, self-distillation without labels: a student (a copy of the base model) learns to make
   its ``[CLS]`` vector point where the frozen base model's mean-pooled vector points (loss
   ``1 - cos(student [CLS], teacher mean)``) over batches of questions (50 tokens, as queries are embedded) or of
   passages (256 tokens, as documents are); recipe :data:`DISTILL_ARGS`;
2. :func:`contrast_embedder`, a short contrastive step from step 1's model: (question, passage) pairs with in-batch
   negatives (multiple-negatives ranking) plus the step-1 loss on the same texts; recipe :data:`CONTRAST_ARGS`.

Data (:func:`distillation_texts`, :func:`contrast_pairs`): SQuAD v1.1 train, SQuADShifts, COVID-QA's training articles
(cut into the service's passages) and paragraph-train, from ``$COVIDQA_DATA``. Everything ``make bench-retrieval``
measures on stays out: the COVID-QA dev and test articles, paragraph dev, the deepset FAQ, the community questions.

Each step is cut by a time budget (its learning-rate schedule follows the clock, so it ends fully decayed whatever
the machine), checkpoints every few minutes under ``$COVIDQA_HOME/checkpoints/embedder-distill`` /
``embedder-contrast`` and continues a stopped run when the same command runs again (:mod:`covidqa.training.loop`).
Outputs (save_pretrained format, ``version.json`` saying ``pooling: cls``): ``$COVIDQA_HOME/models/embedder-distilled``
and ``embedder-contrasted``; :func:`ship_embedder` packs the latter into the committed file
(:mod:`covidqa.models.packing`), which the service serves as embedder version 0.

CLI::

    python -m covidqa.feedback.distill [--data-dir DIR] [--max-minutes 40] [--output DIR] [--force]  # make embedder
    python -m covidqa.feedback.distill contrast [--start-from DIR] [--max-minutes 25] [--force]        # ... step 2
    python -m covidqa.feedback.distill ship [--model DIR] [--file FILE]                  # make embedder-ship

Errors: a missing data file raises ``FileNotFoundError`` naming it; an unknown recipe field ``TypeError``.

Example::

    texts = distillation_texts()                    # DistillationTexts(questions=[...], passages=[...])
    result = distill_embedder(args={'max_minutes': 1})   # DistillResult(steps=..., final_loss=..., output=...)
    contrast_embedder()                             # from embedder-distilled into embedder-contrasted
    ship_embedder()                                 # embedder-contrasted -> models/embedder/*.safetensors
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from covidqa.data.passages import read_squad_articles, split_articles
from covidqa.data.records import read_qa_file
from covidqa.models.loading import BASE_MODEL_NAME, atomic_save_pretrained, load_encoder, load_tokenizer
from covidqa.paths import PathLike, checkpoint_dir, distilled_embedder_dir
from covidqa.paths import data_dir as default_data_dir

SQUAD_TRAIN = 'squad_v1.1/derived/train-v1.1.from_explorer.json'
SQUADSHIFTS = ('squadshifts/new_wiki_v1.0.json', 'squadshifts/reddit_v1.0.json',
               'squadshifts/amazon_reviews_v1.0.json')
COVID_ARTICLES_TRAIN = 'covid_qa_deepset/covid-qa-train.json'
COVID_PARAGRAPHS_TRAIN = 'covid_qa_paragraphs/qa_train.json'
DISTILL_FILES = (SQUAD_TRAIN,) + SQUADSHIFTS + (COVID_ARTICLES_TRAIN, COVID_PARAGRAPHS_TRAIN)


@dataclass(frozen=True)
class DistillArgs:
    """The recipe. ``question_batch`` questions of at most ``question_length`` tokens, or ``passage_batch`` passages
    of at most ``passage_length`` tokens, per step; ``passage_share`` of the steps are passage steps; the run lasts
    ``max_minutes`` (or ``max_steps``, whichever comes first)."""

    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    question_batch: int = 64
    question_length: int = 50
    passage_batch: int = 16
    passage_length: int = 256
    passage_share: float = 0.25
    max_minutes: float = 40.0
    max_steps: int = 4000
    seed: int = 0
    checkpoint_minutes: float = 5.0

    def fingerprint(self) -> Dict[str, Any]:
        """What must match for a checkpoint to be resumed (the time budget may grow)."""
        out = asdict(self)
        out.pop('max_minutes')
        out.pop('checkpoint_minutes')
        return out


DISTILL_ARGS = DistillArgs()


@dataclass
class DistillationTexts:
    questions: List[str]
    passages: List[str]
    files: List[str] = field(default_factory=list)


@dataclass
class DistillResult:
    steps: int
    first_loss: Optional[float]
    final_loss: Optional[float]
    seconds: float
    output: Path
    questions: int
    passages: int


def _unique(texts) -> List[str]:
    seen: Dict[str, None] = {}
    for text in texts:
        text = ' '.join(str(text).split())
        if text:
            seen.setdefault(text, None)
    return list(seen)


def distillation_texts(data_dir: Optional[PathLike] = None, files: Sequence[str] = DISTILL_FILES) -> DistillationTexts:
    """The questions and passages of ``files`` under ``data_dir`` (default :func:`covidqa.paths.data_dir`),
    whitespace-normalised and de-duplicated, in file order. Article files (COVID-QA's full articles) are cut into
    passages (:func:`covidqa.data.passages.split_articles`); other files give their paragraphs. Raises
    ``FileNotFoundError`` naming the missing files."""
    root = Path(data_dir) if data_dir else default_data_dir()
    missing = [name for name in files if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f'distillation data not found under {root}: missing {missing}; set $COVIDQA_DATA or '
                                f'--data-dir')
    questions: List[str] = []
    passages: List[str] = []
    for name in files:
        if name.startswith('covid_qa_deepset/'):
            articles = read_squad_articles(root / name)
            questions.extend(q.question for a in articles for q in a.questions)
            passages.extend(p.text for p in split_articles(articles))
        else:
            records = read_qa_file(root / name)
            questions.extend(r.question for r in records)
            passages.extend(r.context for r in records)
    return DistillationTexts(_unique(questions), _unique(passages), list(files))


class _DistillObjective:
    """Batches of questions or of passages (length-sorted within chunks, so that padding stays small), and the
    cosine distance between the student's ``[CLS]`` and the frozen teacher's mean-pooled vector."""

    def __init__(self, student, teacher, tokenizer, texts: DistillationTexts, args: DistillArgs, bf16: bool):
        self.student, self.teacher, self.tokenizer, self.texts, self.args = student, teacher, tokenizer, texts, args
        self.bf16 = bf16
        self.rng = random.Random(args.seed)

    def _kind_batches(self, texts: List[str], size: int, length: int, rng: random.Random) -> List[tuple]:
        order = list(texts)
        rng.shuffle(order)
        batches: List[tuple] = []
        chunk = size * 32
        for start in range(0, len(order), chunk):
            part = sorted(order[start:start + chunk], key=len)
            batches.extend((part[i:i + size], length) for i in range(0, len(part), size))
        return batches

    def batches(self, epoch: int) -> List[tuple]:
        rng = random.Random(self.args.seed + epoch)
        questions = self._kind_batches(self.texts.questions, self.args.question_batch, self.args.question_length, rng)
        passages = self._kind_batches(self.texts.passages, self.args.passage_batch, self.args.passage_length, rng)
        share = self.args.passage_share
        wanted = int(round(len(questions) * share / max(1e-9, 1 - share))) if share < 1 else len(passages)
        mixed = questions + passages[:wanted]
        rng.shuffle(mixed)
        return mixed

    def loss(self, batch):
        import torch

        texts, length = batch
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=length, return_tensors='pt')
        inputs = dict(input_ids=enc['input_ids'], attention_mask=enc['attention_mask'],
                      token_type_ids=torch.zeros_like(enc['input_ids']))
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=self.bf16):
            with torch.no_grad():
                hidden = self.teacher(**inputs).last_hidden_state.float()
                mask = enc['attention_mask'][..., None].float()
                target = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            cls = self.student(**inputs).last_hidden_state[:, 0].float()
        return (1 - torch.nn.functional.cosine_similarity(cls, target, dim=-1)).mean()


def distill_embedder(output: Optional[PathLike] = None, data_dir: Optional[PathLike] = None,
                     checkpoints: Optional[PathLike] = None, args: Optional[Mapping[str, Any]] = None,
                     force: bool = False, texts: Optional[DistillationTexts] = None) -> Optional[DistillResult]:
    """Run (or resume) the distillation and save the student to ``output`` (default
    :func:`covidqa.paths.distilled_embedder_dir`) with a ``version.json`` (``pooling: cls``, the recipe, the data,
    the losses). ``args`` override :data:`DISTILL_ARGS` fields (an unknown one raises ``TypeError`` naming it);
    ``texts`` replaces the data files (tests). Returns ``None`` without training when ``output`` already holds a
    model and not ``force``."""
    import torch

    from covidqa.embedding.versions import VERSION_FILE
    from covidqa.training.checkpoint import TrainingCheckpoint
    from covidqa.training.loop import LoopCheckpoint, Step, train_loop
    from covidqa.training.optim import adamw, cpu_has_native_bf16

    target = Path(output) if output else distilled_embedder_dir()
    if (target / 'config.json').is_file() and not force:
        print(f'distilled embedder already at {target} (use --force to train again)')
        return None
    recipe = DistillArgs(**{**asdict(DISTILL_ARGS), **dict(args or {})})
    texts = texts or distillation_texts(data_dir)
    bf16 = cpu_has_native_bf16()
    print(f'distilling [CLS] <- mean pooling on {len(texts.questions)} questions and {len(texts.passages)} '
          f'passages; bf16 {bf16}; {json.dumps(asdict(recipe))}', flush=True)
    torch.manual_seed(recipe.seed)
    tokenizer = load_tokenizer(BASE_MODEL_NAME)
    teacher = load_encoder(BASE_MODEL_NAME)
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = load_encoder(BASE_MODEL_NAME)
    objective = _DistillObjective(student, teacher, tokenizer, texts, recipe, bf16)
    optimizer = adamw(student.named_parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    store = TrainingCheckpoint(checkpoints or checkpoint_dir('embedder-distill'))
    fingerprint = {**recipe.fingerprint(), 'questions': len(texts.questions), 'passages': len(texts.passages)}
    started = time.time()

    def progress(done: Step) -> None:
        if done.running is not None and done.step % 50 == 0:
            print(f'step {done.step}/{done.steps} loss {done.running:.4f} lr {done.lr:.2e} '
                  f'({time.time() - started:.0f} s)', flush=True)

    run = train_loop(student, optimizer, objective, total_steps=recipe.max_steps,
                     learning_rate=recipe.learning_rate, warmup_ratio=recipe.warmup_ratio, max_grad_norm=1.0,
                     max_steps=recipe.max_steps, max_seconds=recipe.max_minutes * 60, on_step=progress,
                     checkpoint=LoopCheckpoint(store, fingerprint, recipe.checkpoint_minutes * 60))
    first = run.history[0] if run.history else None
    final = run.history[-1] if run.history else None
    meta = {'version': 0, 'pooling': 'cls', 'recipe': 'distill-cls-from-mean', 'args': asdict(recipe),
            'data': {'files': texts.files, 'questions': len(texts.questions), 'passages': len(texts.passages)},
            'steps': run.steps, 'first_loss': first, 'final_loss': final, 'bf16': bf16}
    atomic_save_pretrained(student, tokenizer, target, {VERSION_FILE: json.dumps(meta, indent=2)})
    print(f'distilled: {run.steps} steps, loss {first} -> {final}; saved to {target}', flush=True)
    return DistillResult(steps=run.steps, first_loss=first, final_loss=final, seconds=time.time() - started,
                         output=target, questions=len(texts.questions), passages=len(texts.passages))


def ship_embedder(model: Optional[PathLike] = None, target: Optional[PathLike] = None) -> str:
    """Pack the embedder in ``model`` (default :func:`covidqa.paths.contrasted_embedder_dir`, the recipe's result)
    into the committed file ``target`` (default ``models/embedder/covidqa-embedder.fp16.safetensors``) and its checksum, with
    its ``version.json`` as the file's metadata; returns the sha256. Raises ``FileNotFoundError`` when ``model``
    holds no model, ``ValueError`` when it does not embed with ``[CLS]``."""
    from covidqa.embedding.versions import VERSION_FILE
    from covidqa.models.packing import pack_model
    from covidqa.models.shipped import kind_of
    from covidqa.paths import contrasted_embedder_dir

    source = Path(model) if model else contrasted_embedder_dir()
    if not (source / 'config.json').is_file():
        raise FileNotFoundError(f'no embedder at {source}: run `make embedder` first')
    meta_path = source / VERSION_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get('pooling') != 'cls':
        raise ValueError(f'{source} does not embed with [CLS] (its {VERSION_FILE} says pooling '
                         f'{meta.get("pooling")!r}); only a [CLS] embedder can be version 0')
    destination = Path(target or kind_of('embedder').file)
    digest = pack_model(source, destination, meta, kind='embedder')
    print(f'packed {source} into {destination} ({destination.stat().st_size / 2**20:.1f} MiB, sha256 {digest})')
    return digest


@dataclass(frozen=True)
class ContrastArgs:
    """The contrastive step after the distillation: ``batch`` (question, passage) pairs per step, every other
    passage of the batch a negative (multiple-negatives ranking, :mod:`covidqa.training.losses`), plus
    ``distill_weight`` times the distillation loss on the same texts, so that the ``[CLS]`` vector keeps what it
    learned; ``max_minutes`` (or ``max_steps``)."""

    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    batch: int = 32
    question_length: int = 50
    passage_length: int = 128  # half of what documents are embedded from: 2.5x the steps in the same minutes
    distill_weight: float = 1.0
    max_minutes: float = 25.0
    max_steps: int = 2000
    seed: int = 0
    checkpoint_minutes: float = 5.0

    def fingerprint(self) -> Dict[str, Any]:
        out = asdict(self)
        out.pop('max_minutes')
        out.pop('checkpoint_minutes')
        return out


CONTRAST_ARGS = ContrastArgs()


def contrast_pairs(data_dir: Optional[PathLike] = None, files: Sequence[str] = DISTILL_FILES) -> List[tuple]:
    """(question, passage) pairs of ``files`` (the distillation's data): each question with its paragraph, or for
    COVID-QA's full articles with the passage that holds its answer; de-duplicated, in file order."""
    root = Path(data_dir) if data_dir else default_data_dir()
    distillation_texts(root, files)  # the same check for missing files
    pairs: Dict[tuple, None] = {}
    for name in files:
        if name.startswith('covid_qa_deepset/'):
            articles = read_squad_articles(root / name)
            passages = split_articles(articles)
            for article in articles:
                for q in article.questions:
                    holding = [p for p in passages if p.holds(q.article_id, q.answer_start, q.answer_end)]
                    if holding:
                        pairs.setdefault((' '.join(q.question.split()), ' '.join(holding[0].text.split())), None)
        else:
            for r in read_qa_file(root / name):
                pairs.setdefault((' '.join(r.question.split()), ' '.join(r.context.split())), None)
    return [pair for pair in pairs if pair[0] and pair[1]]


class _ContrastObjective:
    """Batches of (question, passage) pairs in which no passage and no question appears twice (a copy would be a
    false negative); the loss of :class:`ContrastArgs`."""

    def __init__(self, student, teacher, tokenizer, pairs: List[tuple], args: ContrastArgs, bf16: bool):
        from covidqa.training.losses import MultipleNegativesRankingLoss

        self.student, self.teacher, self.tokenizer, self.pairs, self.args = student, teacher, tokenizer, pairs, args
        self.bf16 = bf16
        self.mnr = MultipleNegativesRankingLoss()

    def batches(self, epoch: int) -> List[list]:
        order = list(self.pairs)
        random.Random(self.args.seed + epoch).shuffle(order)
        batches: List[list] = []
        while order:
            leftover: List[tuple] = []
            batch: List[tuple] = []
            seen: set = set()
            for pair in order:
                if pair[0] in seen or pair[1] in seen:
                    leftover.append(pair)
                    continue
                batch.append(pair)
                seen.update(pair)
                if len(batch) == self.args.batch:
                    batches.append(batch)
                    batch, seen = [], set()
            if len(batch) >= 2:
                batches.append(batch)
            if len(leftover) == len(order):
                break
            order = leftover
        return batches

    def _vectors(self, texts: List[str], length: int):
        import torch

        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=length, return_tensors='pt')
        inputs = dict(input_ids=enc['input_ids'], attention_mask=enc['attention_mask'],
                      token_type_ids=torch.zeros_like(enc['input_ids']))
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=self.bf16):
            with torch.no_grad():
                hidden = self.teacher(**inputs).last_hidden_state.float()
                mask = enc['attention_mask'][..., None].float()
                target = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            cls = self.student(**inputs).last_hidden_state[:, 0].float()
        return cls, target

    def loss(self, batch):
        import torch

        questions, q_target = self._vectors([q for q, _ in batch], self.args.question_length)
        passages, p_target = self._vectors([p for _, p in batch], self.args.passage_length)
        ranking = self.mnr(questions, passages)
        cos = torch.nn.functional.cosine_similarity
        distill = ((1 - cos(questions, q_target, dim=-1)).mean() + (1 - cos(passages, p_target, dim=-1)).mean()) / 2
        return ranking + self.args.distill_weight * distill


def contrast_embedder(start_from: Optional[PathLike] = None, output: Optional[PathLike] = None,
                      data_dir: Optional[PathLike] = None, checkpoints: Optional[PathLike] = None,
                      args: Optional[Mapping[str, Any]] = None, force: bool = False,
                      pairs: Optional[List[tuple]] = None) -> Optional[DistillResult]:
    """The contrastive step (:class:`ContrastArgs`) from the distilled embedder ``start_from`` (default
    :func:`covidqa.paths.distilled_embedder_dir`) into ``output`` (default
    :func:`covidqa.paths.contrasted_embedder_dir`), teacher the base model's mean pooling as in
    :func:`distill_embedder`; resumable, ``None`` without training when ``output`` holds a model and not ``force``.
    Raises ``FileNotFoundError`` when ``start_from`` holds no model."""
    import torch

    from covidqa.embedding.versions import VERSION_FILE
    from covidqa.paths import contrasted_embedder_dir
    from covidqa.training.checkpoint import TrainingCheckpoint
    from covidqa.training.loop import LoopCheckpoint, Step, train_loop
    from covidqa.training.optim import adamw, cpu_has_native_bf16

    source = Path(start_from) if start_from else distilled_embedder_dir()
    if not (source / 'config.json').is_file():
        raise FileNotFoundError(f'no distilled embedder at {source}: run the distillation first (`make embedder`)')
    target = Path(output) if output else contrasted_embedder_dir()
    if (target / 'config.json').is_file() and not force:
        print(f'contrasted embedder already at {target} (use --force to train again)')
        return None
    recipe = ContrastArgs(**{**asdict(CONTRAST_ARGS), **dict(args or {})})
    pairs = pairs or contrast_pairs(data_dir)
    bf16 = cpu_has_native_bf16()
    print(f'contrastive step on {len(pairs)} (question, passage) pairs from {source}; bf16 {bf16}; '
          f'{json.dumps(asdict(recipe))}', flush=True)
    torch.manual_seed(recipe.seed)
    tokenizer = load_tokenizer(BASE_MODEL_NAME)
    teacher = load_encoder(BASE_MODEL_NAME)
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = load_encoder(source)
    objective = _ContrastObjective(student, teacher, tokenizer, pairs, recipe, bf16)
    optimizer = adamw(student.named_parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    store = TrainingCheckpoint(checkpoints or checkpoint_dir('embedder-contrast'))
    fingerprint = {**recipe.fingerprint(), 'pairs': len(pairs), 'start_from': str(source)}
    started = time.time()

    def progress(done: Step) -> None:
        if done.running is not None and done.step % 25 == 0:
            print(f'step {done.step}/{done.steps} loss {done.running:.4f} lr {done.lr:.2e} '
                  f'({time.time() - started:.0f} s)', flush=True)

    run = train_loop(student, optimizer, objective, total_steps=recipe.max_steps,
                     learning_rate=recipe.learning_rate, warmup_ratio=recipe.warmup_ratio, max_grad_norm=1.0,
                     max_steps=recipe.max_steps, max_seconds=recipe.max_minutes * 60, on_step=progress,
                     checkpoint=LoopCheckpoint(store, fingerprint, recipe.checkpoint_minutes * 60))
    first = run.history[0] if run.history else None
    final = run.history[-1] if run.history else None
    before = json.loads((source / VERSION_FILE).read_text()) if (source / VERSION_FILE).is_file() else {}
    meta = {**before, 'recipe': 'distill-cls-from-mean+contrast',
            'contrast': {'args': asdict(recipe), 'pairs': len(pairs), 'steps': run.steps, 'first_loss': first,
                         'final_loss': final, 'start_from': str(source)}}
    atomic_save_pretrained(student, tokenizer, target, {VERSION_FILE: json.dumps(meta, indent=2)})
    print(f'contrasted: {run.steps} steps, loss {first} -> {final}; saved to {target}', flush=True)
    return DistillResult(steps=run.steps, first_loss=first, final_loss=final, seconds=time.time() - started,
                         output=target, questions=len(pairs), passages=len(pairs))


USER_ERRORS = (FileNotFoundError, ValueError, TypeError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from covidqa.models.shipped import ShippedModelError
    from covidqa.runtime.commands import run_command as run_with

    def run_command(command, stopped: str) -> int:
        return run_with(command, USER_ERRORS + (ShippedModelError,), stopped)

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['contrast']:
        step = argparse.ArgumentParser(prog='python -m covidqa.feedback.distill contrast',
                                       description='the contrastive step after the distillation')
        step.add_argument('--data-dir', help='data root (default: $COVIDQA_DATA or ../shared/data)')
        step.add_argument('--start-from', help='the distilled embedder (default: $COVIDQA_HOME/models/'
                                                'embedder-distilled)')
        step.add_argument('--output', help='default: $COVIDQA_HOME/models/embedder-contrasted')
        step.add_argument('--max-minutes', type=float, help=f'time budget (default {CONTRAST_ARGS.max_minutes:g})')
        step.add_argument('--args', help='other ContrastArgs fields as a JSON object')
        step.add_argument('--force', action='store_true', help='train again even if the output exists')
        c = step.parse_args(argv[1:])
        extra_c: Dict[str, Any] = json.loads(c.args) if c.args else {}
        if c.max_minutes is not None:
            extra_c['max_minutes'] = c.max_minutes
        return run_command(lambda: contrast_embedder(c.start_from, c.output, c.data_dir, None, extra_c, c.force)
                           and 0, 'stopped; run the same command again to resume from the last checkpoint')
    if argv[:1] == ['ship']:
        ship = argparse.ArgumentParser(prog='python -m covidqa.feedback.distill ship',
                                       description='pack the embedder into the committed file')
        ship.add_argument('--model', help='embedder directory (default: $COVIDQA_HOME/models/embedder-contrasted)')
        ship.add_argument('--file', help='packed file (default: models/embedder/covidqa-embedder.fp16.safetensors)')
        shipped = ship.parse_args(argv[1:])
        return run_command(lambda: ship_embedder(shipped.model, shipped.file) and 0, 'stopped')

    parser = argparse.ArgumentParser(prog='python -m covidqa.feedback.distill', description=__doc__.split('\n')[0],
                                     epilog='`python -m covidqa.feedback.distill ship --help`: pack it for the '
                                            'repository')
    parser.add_argument('--data-dir', help='data root (default: $COVIDQA_DATA or ../shared/data)')
    parser.add_argument('--output', help='where the embedder goes (default: $COVIDQA_HOME/models/embedder-distilled)')
    parser.add_argument('--checkpoint-dir', help='resumable checkpoints (default: $COVIDQA_HOME/checkpoints/'
                                                 'embedder-distill)')
    parser.add_argument('--max-minutes', type=float, help=f'time budget (default {DISTILL_ARGS.max_minutes:g})')
    parser.add_argument('--args', help='other DistillArgs fields as a JSON object')
    parser.add_argument('--force', action='store_true', help='train again even if the output exists')
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')

    def run() -> None:
        extra: Dict[str, Any] = json.loads(ns.args) if ns.args else {}
        if not isinstance(extra, dict):
            raise ValueError('--args must be a JSON object')
        if ns.max_minutes is not None:
            extra['max_minutes'] = ns.max_minutes
        distill_embedder(ns.output, ns.data_dir, ns.checkpoint_dir, extra, force=ns.force)

    return run_command(run, 'stopped; run the same command again to resume from the last checkpoint')


__all__ = ['DISTILL_ARGS', 'DISTILL_FILES', 'DistillArgs', 'DistillResult', 'DistillationTexts', 'distill_embedder',
           'distillation_texts', 'ship_embedder', 'CONTRAST_ARGS', 'ContrastArgs', 'contrast_embedder', 'contrast_pairs']

if __name__ == '__main__':
    sys.exit(main())
