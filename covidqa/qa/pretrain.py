"""Stage 1 of the reader recipe: teach the span reader general extractive QA on SQuAD-style data.

COVID-QA alone (2,019 questions) stops the reader near paragraph F1 0.52-0.55 (the learning curve in
``benchmarks/READER_RESULTS.md``). Readers that answer well first learn span extraction from a large general set,
then adapt to the domain. This module is that first stage:

- data: SQuAD v1.1 train (87,599 questions, CC BY-SA 4.0) plus SQuADShifts (new Wikipedia, Reddit, Amazon
  reviews: 27,626 questions, CC BY 4.0), read from ``$COVIDQA_DATA`` (``../shared/data`` here). SQuAD v1.1 dev
  stays out: it is the held-out measure of this stage;
- recipe: :data:`PRETRAIN_ARGS` (all-MiniLM-L6-v2 + span head, the question-word token type and shared
  normalisation of the COVID-QA recipe, seed 42; the length is a share of an epoch cut by a time budget, and the
  learning-rate schedule follows whichever runs out first, so the steps reached depend on the machine);
- resumable: a checkpoint every few minutes under ``$COVIDQA_HOME/checkpoints/reader-pretrain``; running the same
  command again continues where it stopped (same batches, the time already spent counted), so a long run can be done
  in pieces. ``--force --epochs/--max-minutes`` extends a finished run (the shipped reader's second piece).

Stage 2 (:func:`covidqa.qa.recipe.train_default_reader` with ``start_from``) fine-tunes the result on COVID-QA.

CLI (``make reader-pretrain``)::

    python -m covidqa.qa.pretrain [--data-dir DIR] [--epochs 0.5] [--output DIR] [--checkpoint-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from covidqa.data.records import QARecord, read_qa_file
from covidqa.models.loading import BASE_MODEL_NAME
from covidqa.paths import PathLike, checkpoint_dir, pretrained_reader_dir
from covidqa.paths import data_dir as default_data_dir
from covidqa.qa.api import QuestionAnswering, TrainResult
from covidqa.qa.args import QATrainArgs, QATrainArgsError
from covidqa.qa.cli import run_command
from covidqa.training.optim import cpu_has_native_bf16

SQUAD_TRAIN = 'squad_v1.1/derived/train-v1.1.from_explorer.json'
SQUAD_DEV = 'squad_v1.1/derived/dev-v1.1.from_explorer.json'
SQUADSHIFTS = ('squadshifts/new_wiki_v1.0.json', 'squadshifts/reddit_v1.0.json',
               'squadshifts/amazon_reviews_v1.0.json')
PRETRAIN_FILES = (SQUAD_TRAIN,) + SQUADSHIFTS

# Stage 1's recipe. One pass over SQuAD + SQuADShifts (~124k windows) is ~3.5 hours on 2 idle cores (~9-10 windows/s
# in bf16 with 2 frozen layers); the shipped reader got 0.79 of an epoch (3,060 steps) in two pieces of 90 minutes
# (`num_train_epochs`, cut by `max_train_seconds`): benchmarks/READER_RESULTS.md.
PRETRAIN_ARGS = QATrainArgs(
    learning_rate=1.5e-4,  # small models take large steps; up to ~3.5k steps of 32 windows
    weight_decay=0.01,
    num_train_epochs=0.9,
    max_train_seconds=10800.0,  # 3 hours at most, in pieces; the schedule follows the clock (and resumes with it)
    batch_size=32,
    max_seq_length=256,
    doc_stride=128,
    negatives_per_question=1,
    max_positives_per_question=1,
    warmup_ratio=0.06,
    bf16=True,  # turned off on CPUs without native bf16 (emulated bf16 is slower than fp32)
    freeze_layers=2,  # embeddings + 2 lowest layers fixed: 1.6x the windows/s of training everything
    question_word_type=True,  # as in stage 2, so that stage 2 starts from a model that already uses it
    shared_norm_weight=1.0,
    seed=42,
    checkpoint_minutes=5.0,
)


def build_pretraining_records(data_dir: Optional[PathLike] = None,
                              files: Sequence[str] = PRETRAIN_FILES) -> List[QARecord]:
    """The training records of stage 1: every question of ``files`` under ``data_dir`` (default
    :func:`covidqa.paths.data_dir`), its first answer as the label. Raises ``FileNotFoundError`` naming
    the missing files."""
    root = Path(data_dir) if data_dir else default_data_dir()
    missing = [name for name in files if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f'pretraining data not found under {root.resolve()}: missing {missing}; '
                                f'set $COVIDQA_DATA or --data-dir (SQuAD v1.1 and SQuADShifts, SQuAD JSON)')
    records: List[QARecord] = []
    for name in files:
        records.extend(read_qa_file(root / name))
    return records


def pretrain_reader(output: Optional[PathLike] = None, data_dir: Optional[PathLike] = None,
                    checkpoints: Optional[PathLike] = None, args: Optional[Mapping[str, Any]] = None,
                    files: Sequence[str] = PRETRAIN_FILES, force: bool = False) -> Optional[TrainResult]:
    """Run (or resume) stage 1 and save the reader to ``output`` (default
    :func:`covidqa.paths.pretrained_reader_dir`). ``args`` override :data:`PRETRAIN_ARGS` keys. Returns ``None``
    without training when ``output`` already holds a model and not ``force``."""
    target = Path(output) if output else pretrained_reader_dir()
    if (target / 'config.json').is_file() and not force:
        print(f'pretrained reader already at {target} (use --force to train again)')
        return None
    config = PRETRAIN_ARGS.to_dict()
    config['bf16'] = config['bf16'] and cpu_has_native_bf16()
    config.update(args or {})
    config['checkpoint_dir'] = str(checkpoints or checkpoint_dir('reader-pretrain'))
    config['output_dir'] = None
    train_args = QATrainArgs.from_any(config)
    records = build_pretraining_records(data_dir, files)
    print(f'stage 1: {len(records)} SQuAD-style questions from {list(files)}; checkpoints in '
          f'{train_args.checkpoint_dir}', flush=True)
    print(f'config: {json.dumps({k: v for k, v in train_args.to_dict().items() if v is not None})}', flush=True)
    import torch

    torch.manual_seed(train_args.seed)  # the fresh span head is drawn from torch's generator: reproducible runs
    qa = QuestionAnswering(BASE_MODEL_NAME)
    result = qa.train(records, train_args)
    qa.save(target, meta={'stage': 'pretrain', 'data': {'files': list(files), 'questions': len(records)}})
    print(f'stage 1 done: {result.steps} steps ({result.epochs:.2f} epochs), loss {result.first_loss:.3f} -> '
          f'{result.final_loss:.3f}; saved to {target}', flush=True)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    if 'torch' not in sys.modules:  # sleeping OpenMP waits: see covidqa.qa.cli.main
        os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    parser = argparse.ArgumentParser(prog='python -m covidqa.qa.pretrain', description=__doc__.split('\n')[0])
    parser.add_argument('--data-dir', help='data root (default: $COVIDQA_DATA or ../shared/data)')
    parser.add_argument('--output', help='where the pretrained reader goes (default: $COVIDQA_HOME/models/'
                                         'reader-pretrained)')
    parser.add_argument('--checkpoint-dir', help='resumable checkpoints (default: $COVIDQA_HOME/checkpoints/'
                                                 'reader-pretrain)')
    parser.add_argument('--epochs', type=float, help=f'share of an epoch (default {PRETRAIN_ARGS.num_train_epochs})')
    budget = PRETRAIN_ARGS.max_train_seconds
    assert budget is not None  # PRETRAIN_ARGS sets one
    parser.add_argument('--max-minutes', type=float,
                        help=f'time budget of the whole run in minutes (default {budget / 60:g})')
    parser.add_argument('--args', help='extra QATrainArgs as a JSON object')
    parser.add_argument('--force', action='store_true', help='train again even if the output exists')
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')

    def run() -> None:
        extra: Dict[str, Any] = json.loads(ns.args) if ns.args else {}
        if not isinstance(extra, dict):
            raise QATrainArgsError('--args must be a JSON object')
        if ns.epochs is not None:
            extra['num_train_epochs'] = ns.epochs
        if ns.max_minutes is not None:
            extra['max_train_seconds'] = ns.max_minutes * 60 if ns.max_minutes > 0 else None
        pretrain_reader(ns.output, ns.data_dir, ns.checkpoint_dir, extra, force=ns.force)

    return run_command(run, 'stopped; run the same command again to resume from the last checkpoint')


__all__ = ['PRETRAIN_ARGS', 'PRETRAIN_FILES', 'SQUAD_DEV', 'build_pretraining_records', 'pretrain_reader']

if __name__ == '__main__':
    sys.exit(main())
