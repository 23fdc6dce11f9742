"""Finetune the CLS embedder from feedback labels (plain torch, no jina), like ``finetuner.fit``.

Training data is a list of labeled (query, document) pairs: ``accepted`` documents are good matches for the query,
``rejected`` ones bad. It can come as a file written by :meth:`covidqa.feedback.store.FeedbackStore.export` (CSV or
JSONL with the columns ``query, document, label``), a label-store directory, a
:class:`~covidqa.feedback.store.FeedbackStore`, rows (dicts) or :class:`~covidqa.feedback.store.TrainingExample`
objects.

Each round trains from version 0, the shipped ``[CLS]`` embedder (``init='base'``, the default: every round sees every label, so rounds never
drift) or from the current ``TARGET`` (``init='target'``), then saves a new version with
:meth:`covidqa.embedding.versions.ModelVersions.save_new` (atomic) and moves ``TARGET`` to it; the indexer re-embeds
the stored documents and moves ``ACTIVE`` (see :mod:`covidqa.embedding.versions`).

Losses, by name (``loss``, :data:`covidqa.training.losses.LOSSES`): ``'mnr'`` (default; in-batch negatives +
rejected matches as hard negatives, uses the queries with an accepted match) and ``'cosine'`` (finetuner's cosine
siamese loss; uses every labeled pair). Each builds its own batches; :func:`covidqa.training.loop.train_loop` trains
on them (AdamW, linear warmup and decay, gradients clipped to 1).

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
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Union, cast

import covidqa  # noqa: F401  (offline environment)
from covidqa.embedding.encoder import resolve_pooling
from covidqa.embedding.pooling import pool
from covidqa.embedding.versions import ModelVersions
from covidqa.feedback.options import LOSS_NAMES, FinetuneOptions
from covidqa.feedback.store import FeedbackStore, TrainingExample, examples_from_rows, read_rows
from covidqa.models.loading import DEFAULT_EMBEDDER, load_encoder, load_tokenizer
from covidqa.options import add_arguments
from covidqa.paths import PathLike
from covidqa.training.loop import Step, TrainingCancelled, train_loop
from covidqa.training.optim import adamw

__all__ = ['FinetuneOptions', 'LOSS_NAMES', 'FitResult', 'TrainingCancelled', 'fit', 'load_training_data', 'main',
           'train_encoder']



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


class _LabelObjective:
    """The embedder's objective for :func:`covidqa.training.loop.train_loop`: the loss's batches of the labels and
    the loss of a batch embedded by the trainable encoder; ``items`` counts the last epoch's training items."""

    def __init__(self, loss_fn, encoder: _TrainableEncoder, examples: List[TrainingExample], rng: random.Random,
                 batch_size: int, max_hard_negatives: int):
        self.loss_fn, self.encoder, self.examples, self.rng = loss_fn, encoder, examples, rng
        self.batch_size, self.max_hard_negatives = batch_size, max_hard_negatives
        self.items = 0

    def batches(self, epoch: int) -> list:
        batches = self.loss_fn.batches(self.examples, self.rng, self.batch_size, self.max_hard_negatives)
        self.items = sum(len(b) for b in batches)
        return batches

    def loss(self, batch):
        return self.loss_fn.batch_loss(self.encoder, batch)


def train_encoder(train_data: TrainData, model: PathLike = DEFAULT_EMBEDDER, *, options: Optional[FinetuneOptions] = None,
                  num_threads: Optional[int] = None, callback: Optional[Callable[[dict], None]] = None,
                  stop_event: Optional[threading.Event] = None, **settings: Any) -> FitResult:
    """Train an encoder on labels, in memory (nothing saved); returns a :class:`FitResult` with the model.

    ``options`` (:class:`~covidqa.feedback.options.FinetuneOptions`, e.g. ``loss``, ``epochs``, ``lr``); ``**settings``
    override single ones. ``callback`` gets ``{'epoch', 'step', 'steps', 'loss'}`` after every step; setting
    ``stop_event`` cancels with :class:`TrainingCancelled`. Raises ``ValueError`` for a bad or unknown setting (naming
    it) or labels the loss cannot use (e.g. no accepted match for ``'mnr'``), ``FloatingPointError`` when the loss
    stops being finite.
    """
    import torch

    from covidqa.training.losses import LOSSES

    opts = (options or FinetuneOptions()).with_overrides(settings)
    loss, epochs, lr, batch_size, max_length = opts.loss, opts.epochs, opts.lr, opts.batch_size, opts.max_length
    pooling, max_hard_negatives, seed = opts.pooling, opts.max_hard_negatives, opts.seed
    weight_decay, warmup_ratio = opts.weight_decay, opts.warmup_ratio
    loss_type = LOSSES[loss]
    if batch_size < loss_type.min_batch_size:
        raise ValueError(f'the {loss} loss needs batch_size >= {loss_type.min_batch_size}')
    examples = load_training_data(train_data)
    config = dict(loss=loss, epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length, pooling=pooling,
                  max_hard_negatives=max_hard_negatives, weight_decay=weight_decay, warmup_ratio=warmup_ratio,
                  seed=seed, init=str(model))
    usable = loss_type.usable(examples)

    if num_threads:
        torch.set_num_threads(num_threads)
    torch.manual_seed(seed)
    encoder = _TrainableEncoder(model, pooling, max_length)
    loss_fn = loss_type()
    # the schedule's length from one epoch's batches, drawn from a generator of their own: the epochs' shuffles
    # start from the same seed
    steps_per_epoch = len(loss_fn.batches(usable, random.Random(seed), batch_size, max_hard_negatives))
    objective = _LabelObjective(loss_fn, encoder, usable, random.Random(seed), batch_size, max_hard_negatives)
    optimizer = adamw(encoder.model.named_parameters(), lr=lr, weight_decay=weight_decay)

    def progress(done: Step) -> None:
        assert callback is not None  # passed on only with a callback
        callback({'epoch': done.epoch, 'step': done.step, 'steps': done.steps, 'loss': done.loss})

    started = time.time()
    run = train_loop(encoder.model, optimizer, objective, total_steps=max(1, steps_per_epoch * epochs),
                     learning_rate=lr, warmup_ratio=warmup_ratio, max_grad_norm=1.0, max_epochs=epochs,
                     on_step=progress if callback is not None else None, stop_event=stop_event)
    final = run.epoch_losses[-1] if run.epoch_losses else None
    return FitResult(version=None, final_loss=final, epoch_losses=run.epoch_losses, steps=run.steps,
                     examples=len(usable), pairs=objective.items, seconds=time.time() - started, config=config,
                     model=encoder.model, tokenizer=encoder.tokenizer)


def fit(train_data: TrainData, *, versions: Optional[Union[ModelVersions, PathLike]] = None,
        model: PathLike = DEFAULT_EMBEDDER,
        init: str = 'base', save: bool = True, set_target: bool = True, meta: Optional[dict] = None,
        **train_kwargs) -> FitResult:
    """Train from labels and (by default) save a new embedder version and move ``TARGET`` to it.

    ``versions``: a :class:`ModelVersions` or its root folder (default ``$COVIDQA_HOME/models/embedder``);
    ``model``: version 0 (default the shipped embedder; ``'base'``: the packaged MiniLM); ``init``: ``'base'`` (train from version 0) or ``'target'`` (continue
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
    """The CLI (see the module docstring): ``fit`` trains, saves a version, moves ``TARGET``; prints the result as
    JSON and returns 0."""
    parser = argparse.ArgumentParser(prog='python -m covidqa.feedback.finetune',
                                     description='Finetune the embedder from feedback labels')
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('fit', help='train, save a new embedder version, move TARGET to it')
    p.add_argument('--train-data', required=True,
                   help='labels: .csv/.jsonl with columns query,document,label (accepted|rejected), or a label-store '
                        'folder')
    add_arguments(p, FinetuneOptions, list(FinetuneOptions.model_fields))
    p.add_argument('--model', default=DEFAULT_EMBEDDER,
                   help=f"version 0: {DEFAULT_EMBEDDER!r} (default), 'base' or a save_pretrained folder")
    p.add_argument('--init', choices=['base', 'target'], default='base',
                   help='start from version 0 (default) or from the current TARGET version')
    p.add_argument('--versions-dir', default=None,
                   help='embedder versions root (default $COVIDQA_HOME/models/embedder)')
    p.add_argument('--no-set-target', action='store_true', help='save the version but leave TARGET where it is')
    p.add_argument('--num-threads', type=int, default=None)
    args = parser.parse_args(argv)
    result = fit(args.train_data, versions=args.versions_dir, model=args.model, init=args.init,
                 set_target=not args.no_set_target, num_threads=args.num_threads, meta={'source': str(args.train_data)},
                 **{name: getattr(args, name) for name in FinetuneOptions.model_fields})
    versions = ModelVersions(args.versions_dir, base_model=args.model)
    assert result.version is not None  # fit saves a version unless save=False
    print(json.dumps({**result.summary(), 'target': versions.target(),
                      'path': str(versions.model_path(result.version))}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
