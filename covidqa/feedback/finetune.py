"""Finetune the CLS embedder from feedback labels (plain torch, no jina), like ``finetuner.fit``.

Training data is a list of labeled (query, document) pairs: ``accepted`` documents are good matches for the query,
``rejected`` ones bad. It can come as a file written by :meth:`covidqa.feedback.store.FeedbackStore.export` (CSV or JSONL
with the columns ``query, document, label``), a label-store directory, a :class:`~covidqa.feedback.store.FeedbackStore`,
rows (dicts) or :class:`~covidqa.feedback.store.TrainingExample` objects.

Each round trains from the base model (``init='base'``, the default: every round sees every label, so rounds never
drift) or from the current ``TARGET`` (``init='target'``), then saves a new version with
:meth:`covidqa.embedding.versions.ModelVersions.save_new` (atomic) and moves ``TARGET`` to it; the indexer re-embeds the stored
documents and moves ``ACTIVE`` (see :mod:`covidqa.embedding.versions`).

Losses (:mod:`covidqa.training.losses`): ``'mnr'`` (default; in-batch negatives + rejected matches as hard negatives, uses the
queries with an accepted match) and ``'cosine'`` (finetuner's cosine siamese loss; uses every labeled pair).

Example::

    from covidqa.feedback.finetune import fit
    result = fit('labels.csv', epochs=8, loss='mnr')      # -> FitResult(version=3, final_loss=0.41, ...)

CLI::

    python -m covidqa.feedback.finetune fit --train-data labels.csv [--epochs 8] [--loss mnr|cosine] [--lr 5e-5]
        [--batch-size 8] [--init base|target] [--versions-dir DIR] [--no-set-target]
"""
from __future__ import annotations

import argparse
import json
import math
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Set, Tuple, Union, cast

import covidqa  # noqa: F401  (offline environment)
from covidqa.embedding.encoder import resolve_pooling
from covidqa.embedding.pooling import pool
from covidqa.embedding.versions import ModelVersions
from covidqa.feedback.store import FeedbackStore, TrainingExample, examples_from_rows, read_rows
from covidqa.models.loading import load_encoder, load_tokenizer
from covidqa.paths import PathLike
from covidqa.text.tokenization import DEFAULT_MAX_LENGTH
from covidqa.training.optim import adamw, set_lr, warmup_decay

DEFAULTS: Dict[str, Any] = dict(
    loss='mnr', epochs=8, lr=5e-5, batch_size=8, max_length=DEFAULT_MAX_LENGTH, pooling='cls', max_hard_negatives=4,
    scale=20.0, symmetric=False, negative_target=-1.0, weight_decay=0.01, warmup_ratio=0.1, seed=0)


LOSS_NAMES = ('cosine', 'mnr')  # the keys of covidqa.training.losses.LOSSES, for processes without torch (that package imports it)


class TrainingCancelled(RuntimeError):
    pass


@dataclass
class FitResult:
    version: Optional[int]  # the saved version (None when save=False)
    final_loss: Optional[float]  # mean loss of the last epoch
    epoch_losses: List[float]
    steps: int
    examples: int  # queries with at least one label
    pairs: int  # training pairs the loss saw per epoch
    seconds: float
    config: dict = field(default_factory=dict)
    model: object = field(default=None, repr=False)  # the trained encoder (in memory)
    tokenizer: object = field(default=None, repr=False)

    def summary(self) -> dict:
        out = asdict(self)
        out.pop('model'), out.pop('tokenizer')
        return out


# ---- data ----------------------------------------------------------------------------------------------------------
TrainData = Union[PathLike, FeedbackStore, Sequence[TrainingExample], Sequence[dict]]


def load_training_data(train_data: TrainData) -> List[TrainingExample]:
    """Normalize any supported training-data form to a list of :class:`TrainingExample`."""
    if isinstance(train_data, FeedbackStore):
        return train_data.examples()
    if isinstance(train_data, (str, Path)):
        path = Path(train_data)
        if path.is_dir():
            return FeedbackStore(path, writes_searches=False).examples()
        if not path.is_file():
            raise FileNotFoundError(f'no training data at {path}: expected a .csv/.jsonl file or a label-store folder')
        return examples_from_rows(read_rows(path))
    items: List[Any] = list(cast(Sequence[Any], train_data))  # neither store nor path: a sequence
    if all(isinstance(x, TrainingExample) for x in items):
        return [TrainingExample(x.query, list(x.positives), list(x.negatives)) for x in items]
    if all(isinstance(x, dict) for x in items):
        return examples_from_rows(items)
    raise TypeError('train_data must be a file, a label-store folder, a FeedbackStore, rows (dicts) or '
                    'TrainingExample objects')


_MnrPair = Tuple[str, str, List[str], FrozenSet[str]]  # (query, positive, hard negatives, all positives)


def _mnr_batches(examples: List[TrainingExample], batch_size: int, max_hard_negatives: int, rng: random.Random):
    """(query, positive, hard negatives, all positives of the query) tuples, grouped into batches in which no query
    and no positive document appears twice (a duplicate would be a false in-batch negative)."""
    pairs: List[_MnrPair] = []
    for ex in examples:
        for pos in ex.positives:
            negs = list(ex.negatives)
            rng.shuffle(negs)
            pairs.append((ex.query, pos, negs[:max_hard_negatives], frozenset(ex.positives)))
    rng.shuffle(pairs)
    batches: List[List[_MnrPair]] = []
    pending = pairs
    while pending:
        batch: List[_MnrPair] = []
        rest: List[_MnrPair] = []
        queries: Set[str] = set()
        positives: Set[str] = set()
        for pair in pending:
            if len(batch) < batch_size and pair[0] not in queries and pair[1] not in positives:
                batch.append(pair)
                queries.add(pair[0])
                positives.add(pair[1])
            else:
                rest.append(pair)
        batches.append(batch)
        pending = rest
    return batches


def _pair_batches(examples: List[TrainingExample], batch_size: int, rng: random.Random):
    pairs = [(ex.query, d, True) for ex in examples for d in ex.positives]
    pairs += [(ex.query, d, False) for ex in examples for d in ex.negatives]
    rng.shuffle(pairs)
    return [pairs[i:i + batch_size] for i in range(0, len(pairs), batch_size)]


# ---- model ---------------------------------------------------------------------------------------------------------
class _TrainableEncoder:
    """A transformers encoder + tokenizer producing pooled sentence vectors with gradients."""

    def __init__(self, model: PathLike, pooling: str, max_length: int):
        self.pooling = resolve_pooling(model, pooling)  # a version trained with another pooling is refused
        self.model = load_encoder(model)
        self.tokenizer = load_tokenizer(model)
        self.max_length = max_length

    def __call__(self, texts: Sequence[str]):
        import torch

        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors='pt')
        out = self.model(input_ids=enc['input_ids'], attention_mask=enc['attention_mask'],
                         token_type_ids=torch.zeros_like(enc['input_ids']))
        return pool(out.last_hidden_state, enc['attention_mask'], self.pooling)


def _embed_unique(encoder: _TrainableEncoder, texts: Sequence[str]):
    """Embed each distinct text once; returns (vectors, index of each input text)."""
    unique = list(dict.fromkeys(texts))
    position = {t: i for i, t in enumerate(unique)}
    return encoder(unique), [position[t] for t in texts]


def train_encoder(train_data: TrainData, model: PathLike = 'base', *, loss: str = DEFAULTS['loss'],
                  epochs: int = DEFAULTS['epochs'], lr: float = DEFAULTS['lr'],
                  batch_size: int = DEFAULTS['batch_size'], max_length: int = DEFAULTS['max_length'],
                  pooling: str = DEFAULTS['pooling'], max_hard_negatives: int = DEFAULTS['max_hard_negatives'],
                  scale: float = DEFAULTS['scale'], symmetric: bool = DEFAULTS['symmetric'],
                  negative_target: float = DEFAULTS['negative_target'],
                  weight_decay: float = DEFAULTS['weight_decay'], warmup_ratio: float = DEFAULTS['warmup_ratio'],
                  seed: int = DEFAULTS['seed'], num_threads: Optional[int] = None,
                  callback: Optional[Callable[[dict], None]] = None,
                  stop_event: Optional[threading.Event] = None) -> FitResult:
    """Train an encoder on labels, in memory (nothing saved). ``callback`` gets ``{'epoch', 'step', 'loss'}`` after
    every step; setting ``stop_event`` cancels with :class:`TrainingCancelled`."""
    import torch

    from covidqa.training.losses import LOSSES, CosineSiameseLoss, MultipleNegativesRankingLoss

    if loss not in LOSSES:
        raise ValueError(f'loss must be one of {sorted(LOSSES)}, got {loss!r}')
    for name, value in (('epochs', epochs), ('batch_size', batch_size), ('max_length', max_length)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got {value!r}')
    if batch_size < 2 and loss == 'mnr':
        raise ValueError('the mnr loss needs batch_size >= 2 (in-batch negatives)')
    if not lr > 0:
        raise ValueError(f'lr must be > 0, got {lr!r}')
    examples = load_training_data(train_data)
    config = dict(loss=loss, epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length, pooling=pooling,
                  max_hard_negatives=max_hard_negatives, scale=scale, symmetric=symmetric,
                  negative_target=negative_target,
                  weight_decay=weight_decay, warmup_ratio=warmup_ratio, seed=seed, init=str(model))
    if loss == 'mnr':
        usable = [ex for ex in examples if ex.positives]
        if not usable:
            raise ValueError('no accepted match in the training data: the mnr loss needs at least one accepted '
                             '(query, document) pair; label more or use loss="cosine"')
    else:
        usable = [ex for ex in examples if ex.positives or ex.negatives]
        if not usable:
            raise ValueError('no labeled pair in the training data')

    if num_threads:
        torch.set_num_threads(num_threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    encoder = _TrainableEncoder(model, pooling, max_length)
    encoder.model.train()
    mnr = MultipleNegativesRankingLoss(scale=scale, symmetric=symmetric)
    siamese = CosineSiameseLoss(negative_target=negative_target)

    def make_batches():
        if loss == 'mnr':
            return _mnr_batches(usable, batch_size, max_hard_negatives, rng)
        return _pair_batches(usable, batch_size, rng)

    steps_per_epoch = len(make_batches())
    rng = random.Random(seed)  # the probe above must not change the epochs' shuffles
    total_steps = max(1, steps_per_epoch * epochs)
    optimizer = adamw(encoder.model.named_parameters(), lr=lr, weight_decay=weight_decay)

    started = time.time()
    epoch_losses: List[float] = []
    step = 0
    pairs_seen = 0
    for epoch in range(epochs):
        batches = make_batches()
        pairs_seen = sum(len(b) for b in batches)
        running = []
        for batch in batches:
            if stop_event is not None and stop_event.is_set():
                raise TrainingCancelled('training cancelled')
            if loss == 'mnr':
                queries = [b[0] for b in batch]
                positives = [b[1] for b in batch]
                negatives = list(dict.fromkeys(n for b in batch for n in b[2]))
                vectors, index = _embed_unique(encoder, queries + positives + negatives)
                nq, npos = len(queries), len(positives)
                anchors = vectors[index[:nq]]
                pos = vectors[index[nq:nq + npos]]
                neg = vectors[index[nq + npos:]] if negatives else None
                candidates = positives + negatives
                mask = torch.tensor([[j != i and candidates[j] in batch[i][3] for j in range(len(candidates))]
                                     for i in range(nq)], dtype=torch.bool)
                value = mnr(anchors, pos, neg, mask=mask)
            else:
                vectors, index = _embed_unique(encoder, [b[0] for b in batch] + [b[1] for b in batch])
                n = len(batch)
                target = siamese.targets(torch.tensor([b[2] for b in batch]))
                value = siamese(vectors[index[:n]], vectors[index[n:]], target)
            optimizer.zero_grad()
            value.backward()
            torch.nn.utils.clip_grad_norm_(encoder.model.parameters(), 1.0)
            set_lr(optimizer, lr * warmup_decay((step + 0.5) / total_steps, warmup_ratio))  # linear warmup, decay
            optimizer.step()
            step += 1
            running.append(float(value.detach()))
            if callback is not None:
                callback({'epoch': epoch, 'step': step, 'steps': total_steps, 'loss': running[-1]})
        epoch_losses.append(sum(running) / max(1, len(running)))
    encoder.model.eval()
    final = epoch_losses[-1] if epoch_losses else None
    if final is not None and not math.isfinite(final):
        raise FloatingPointError(f'training diverged (loss {final}); try a smaller lr')
    return FitResult(version=None, final_loss=final, epoch_losses=epoch_losses, steps=step,
                     examples=len(usable), pairs=pairs_seen, seconds=time.time() - started, config=config,
                     model=encoder.model, tokenizer=encoder.tokenizer)


def fit(train_data: TrainData, *, versions: Optional[Union[ModelVersions, PathLike]] = None, model: PathLike = 'base',
        init: str = 'base', save: bool = True, set_target: bool = True, meta: Optional[dict] = None,
        **train_kwargs) -> FitResult:
    """Train from labels and (by default) save a new embedder version and move ``TARGET`` to it.

    ``versions``: a :class:`ModelVersions` or its root folder (default ``$COVIDQA_HOME/models/embedder``);
    ``model``: the base model of version 0; ``init``: ``'base'`` (train from version 0) or ``'target'`` (continue
    from the current ``TARGET``). Other keyword arguments go to :func:`train_encoder`.
    """
    if not isinstance(versions, ModelVersions):
        versions = ModelVersions(versions, base_model=model)
    if init not in ('base', 'target'):
        raise ValueError(f"init must be 'base' or 'target', got {init!r}")
    start_version = 0 if init == 'base' else versions.target()
    result = train_encoder(train_data, versions.model_path(start_version), **train_kwargs)
    result.config['init_version'] = start_version
    if save:
        info = {**result.summary(), **(meta or {}), 'trained_at': time.time()}
        info.pop('version', None)
        result.version = versions.save_new(result.model, result.tokenizer, meta=info,
                                           pooling=result.config['pooling'])
        if set_target:
            versions.set_target(result.version)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    from covidqa.training.losses import LOSSES

    parser = argparse.ArgumentParser(prog='python -m covidqa.feedback.finetune',
                                     description='Finetune the embedder from feedback labels')
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('fit', help='train, save a new embedder version, move TARGET to it')
    p.add_argument('--train-data', required=True,
                   help='labels: .csv/.jsonl with columns query,document,label (accepted|rejected), or a label-store '
                        'folder')
    p.add_argument('--epochs', type=int, default=DEFAULTS['epochs'])
    p.add_argument('--loss', choices=sorted(LOSSES), default=DEFAULTS['loss'])
    p.add_argument('--lr', type=float, default=DEFAULTS['lr'])
    p.add_argument('--batch-size', type=int, default=DEFAULTS['batch_size'])
    p.add_argument('--max-length', type=int, default=DEFAULTS['max_length'])
    p.add_argument('--pooling', choices=['cls', 'mean'], default=DEFAULTS['pooling'])
    p.add_argument('--max-hard-negatives', type=int, default=DEFAULTS['max_hard_negatives'])
    p.add_argument('--symmetric', action='store_true', help='mnr: also rank the anchors for each positive')
    p.add_argument('--negative-target', type=float, default=DEFAULTS['negative_target'],
                   help='cosine loss target of a rejected pair (finetuner: -1)')
    p.add_argument('--seed', type=int, default=DEFAULTS['seed'])
    p.add_argument('--model', default='base', help="base model (version 0): 'base' or a save_pretrained folder")
    p.add_argument('--init', choices=['base', 'target'], default='base',
                   help='start from the base model (default) or from the current TARGET version')
    p.add_argument('--versions-dir', default=None,
                   help='embedder versions root (default $COVIDQA_HOME/models/embedder)')
    p.add_argument('--no-set-target', action='store_true', help='save the version but leave TARGET where it is')
    p.add_argument('--num-threads', type=int, default=None)
    args = parser.parse_args(argv)
    result = fit(args.train_data, versions=args.versions_dir, model=args.model, init=args.init,
                 set_target=not args.no_set_target, loss=args.loss, epochs=args.epochs, lr=args.lr,
                 batch_size=args.batch_size, max_length=args.max_length, pooling=args.pooling,
                 max_hard_negatives=args.max_hard_negatives, symmetric=args.symmetric,
                 negative_target=args.negative_target, seed=args.seed, num_threads=args.num_threads,
                 meta={'source': str(args.train_data)})
    versions = ModelVersions(args.versions_dir, base_model=args.model)
    assert result.version is not None  # fit saves a version unless save=False
    print(json.dumps({**result.summary(), 'target': versions.target(),
                      'path': str(versions.model_path(result.version))}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
