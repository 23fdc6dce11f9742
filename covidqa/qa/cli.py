"""Command line of the reader: train, evaluate, test, train the default reader, ship it.

``python -m covidqa.qa ...`` (and the ``covidqa-qa`` console script) run :func:`main`; each subcommand prints JSON
(or a CSV with ``test --output``) and exits 0, or prints ``error: ...`` naming the problem and exits 2 (130 when
stopped by Ctrl-C/SIGTERM, after the training loop saved its checkpoint).

Example::

    python -m covidqa.qa train TRAIN.csv [--eval DEV.csv] --output DIR [--args '{"num_train_epochs": 2}']
    python -m covidqa.qa eval DEV.csv [--model DIR]               # {"loss": ..., "exact_match": ..., "f1": ...}
    python -m covidqa.qa test TEST.csv [--model DIR] [--output predictions.csv]
    python -m covidqa.qa default [--force] [--epochs N] [--data-dir DIR] [--start-from DIR]
    python -m covidqa.qa no-answer [--start-from DIR] [--output DIR] [--max-minutes M]
    python -m covidqa.qa ship [--model DIR] [--output FILE]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

from covidqa.data.records import QADataError
from covidqa.models.loading import BASE_MODEL_NAME
from covidqa.models.shipped import ShippedModelError
from covidqa.options import add_arguments
from covidqa.paths import default_reader_dir
from covidqa.qa.api import TRAINING_META_FILE, QuestionAnswering
from covidqa.qa.args import QATrainArgsError
from covidqa.qa.recipe import train_default_reader
from covidqa.reader.options import ReadOptions
from covidqa.runtime import commands

__all__ = ['main', 'run_command']


def _json_arg(text: Optional[str]) -> Dict[str, Any]:
    if not text:
        return {}
    path = Path(text)
    raw = path.read_text() if text.strip()[:1] != '{' and path.is_file() else text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise QATrainArgsError(f'--args is not a JSON object ({error}): {text[:80]!r}') from None
    if not isinstance(value, dict):
        raise QATrainArgsError(f'--args must be a JSON object, got {type(value).__name__}')
    return value


def _print_json(obj) -> None:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # an instance (asdict refuses classes)
        obj = dataclasses.asdict(obj)
    print(json.dumps(obj, indent=2, default=str))


def _cmd_train(ns) -> int:
    args = _json_arg(ns.args)
    if ns.epochs is not None:
        args['num_train_epochs'] = ns.epochs
    if ns.learning_rate is not None:
        args['learning_rate'] = ns.learning_rate
    args['output_dir'] = ns.output
    qa = QuestionAnswering(ns.model)
    result = qa.train(ns.files if len(ns.files) > 1 else ns.files[0], args, eval_filepath=ns.eval)
    result.loss_history = []
    _print_json(result)
    print(f'saved to {Path(ns.output).resolve()}')
    return 0


def _cmd_eval(ns) -> int:
    _print_json(QuestionAnswering(ns.model, **_read_settings(ns)).eval(ns.file))
    return 0


def _cmd_test(ns) -> int:
    results = QuestionAnswering(ns.model, **_read_settings(ns)).test(ns.file)
    if ns.output:
        import csv

        with open(ns.output, 'w', newline='', encoding='utf-8') as handle:
            writer = csv.writer(handle)
            writer.writerow(['answer', 'score', 'start', 'end'])
            for r in results:
                writer.writerow([r.answer, f'{r.score:.6f}', r.start, r.end])
        print(f'{len(results)} answers written to {ns.output}')
    else:
        for r in results:
            print(json.dumps(dataclasses.asdict(r)))
    return 0


def _cmd_no_answer(ns) -> int:
    from covidqa.qa.no_answer import train_no_answer_reader

    train_no_answer_reader(ns.start_from, ns.output, data_dir=ns.data_dir, max_minutes=ns.max_minutes,
                           args=_json_arg(ns.args))
    return 0


def _cmd_default(ns) -> int:
    args = _json_arg(ns.args)
    train_default_reader(ns.output, force=ns.force, epochs=ns.epochs, data_dir=ns.data_dir,
                         max_minutes=ns.max_minutes, args=args, include_articles=not ns.no_articles,
                         article_fraction=ns.article_fraction, start_from=ns.start_from)
    return 0


def _training_summary(model_dir: Path) -> Dict[str, Any]:
    """A model's ``reader_training.json`` without the per-step loss history."""
    path = model_dir / TRAINING_META_FILE
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta.get('train', {}).pop('loss_history', None)
    return meta


def _cmd_ship(ns) -> int:
    from covidqa.models.packing import pack_model
    from covidqa.models.shipped import SHIPPED_READER_FILE

    source = Path(ns.model) if ns.model else default_reader_dir()
    meta = _training_summary(source)
    start = Path(str(meta.get('start_from', '')))
    if (start / TRAINING_META_FILE).is_file():  # the stage the reader was fine-tuned from, for the model card
        meta['start_from_training'] = _training_summary(start)
    target = Path(ns.output) if ns.output else SHIPPED_READER_FILE
    digest = pack_model(source, target, meta, kind='reader')
    print(f'packed {source} into {target} ({target.stat().st_size / 2**20:.1f} MiB, sha256 {digest})')
    return 0


def _cmd_calibrate(ns) -> int:
    from covidqa.qa.calibrate import fit_calibration

    model = ns.model
    sha = ''
    if model is None:  # the shipped reader: its calibration goes beside its file, named by its checksum
        from covidqa.models.shipped import SHIPPED_READER_FILE, expected_sha256, shipped_model_dir
        from covidqa.reader.confidence import CALIBRATION_FILE

        model = str(shipped_model_dir('reader'))
        sha = expected_sha256(SHIPPED_READER_FILE)
        output = ns.output or str(SHIPPED_READER_FILE.parent / CALIBRATION_FILE)
    else:
        output = ns.output
    fit_calibration(model, data_dir=ns.data_dir, output=output, reader_sha256=sha, squad2_limit=ns.squad2_limit or None,
                    plot=ns.plot)
    return 0


CLI_READ_OPTIONS = ('max_seq_length', 'doc_stride', 'max_answer_length', 'lexical_weight')


def _read_settings(ns) -> dict:
    """The reading settings given on the command line (the others: ReadOptions' defaults)."""
    return {name: getattr(ns, name) for name in CLI_READ_OPTIONS if getattr(ns, name) is not None}


def main(argv: Optional[Sequence[str]] = None) -> int:
    # On a shared CPU, OpenMP threads that spin while waiting steal time from each other and from the other
    # processes (measured 2x slower training under load); sleeping waits cost next to nothing on large matmuls.
    if 'torch' not in sys.modules:
        os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    parser = argparse.ArgumentParser(prog='python -m covidqa.qa', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('train', help='fine-tune a reader on labelled CSV/SQuAD files and save it')
    p.add_argument('files', nargs='+', help='training CSV / SQuAD JSON file(s)')
    p.add_argument('--output', required=True, help='directory to save the trained model to (atomically)')
    p.add_argument('--model', default=BASE_MODEL_NAME, help="starting checkpoint (default: 'base')")
    p.add_argument('--eval', help='labelled file evaluated after training')
    p.add_argument('--args', help='QATrainArgs as a JSON object (or a JSON file)')
    p.add_argument('--epochs', type=float, help='num_train_epochs')
    p.add_argument('--learning-rate', type=float, help='learning_rate')
    p.set_defaults(func=_cmd_train)

    for name, helptext in (('eval', 'EM/F1/loss on a labelled file'), ('test', 'answer every row of a file')):
        p = sub.add_parser(name, help=helptext)
        p.add_argument('file')
        p.add_argument('--model', default=None, help='model directory (default: the trained default reader)')
        add_arguments(p, ReadOptions, CLI_READ_OPTIONS)
        if name == 'test':
            p.add_argument('--output', help='write answers to this CSV instead of printing JSON lines')
        p.set_defaults(func=_cmd_eval if name == 'eval' else _cmd_test)

    p = sub.add_parser('default', help='train the default reader into the service home if there is none')
    p.add_argument('--force', action='store_true', help='retrain even if a reader exists')
    p.add_argument('--epochs', type=float, help='num_train_epochs (also lifts the time budget)')
    p.add_argument('--max-minutes', type=float, help='training time budget in minutes (0: none)')
    p.add_argument('--data-dir', help='COVID-QA data root (default: $COVIDQA_DATA or ../shared/data)')
    p.add_argument('--output', help='model directory (default: the service default reader dir)')
    p.add_argument('--args', help='extra QATrainArgs as a JSON object')
    p.add_argument('--no-articles', action='store_true', help='paragraph-level data only')
    p.add_argument('--article-fraction', type=float, default=1.0, help='share of full-article records to use')
    p.add_argument('--start-from', help='model to fine-tune, e.g. stage 1 of the recipe (covidqa.qa.pretrain); '
                                        'adds ADAPT_ARGS to the default recipe (default: base)')
    p.set_defaults(func=_cmd_default)

    p = sub.add_parser('no-answer', help='stage 3: teach a trained reader to say "no answer" (covidqa.qa.no_answer)')
    p.add_argument('--start-from', help='reader to fine-tune (default: the one the service serves)')
    p.add_argument('--output', help='model directory (default: the service default reader dir)')
    p.add_argument('--max-minutes', type=float, help='training time budget in minutes (default 25; 0: none)')
    p.add_argument('--data-dir', help='data root (default: $COVIDQA_DATA or ../shared/data)')
    p.add_argument('--args', help='extra QATrainArgs as a JSON object')
    p.set_defaults(func=_cmd_no_answer)

    p = sub.add_parser('calibrate', help="fit a reader's confidence on held-out questions (covidqa.qa.calibrate)")
    p.add_argument('--model', help='reader directory (default: the shipped reader; its calibration goes to '
                                   'models/reader/calibration.json)')
    p.add_argument('--output', help="calibration file (default: calibration.json beside the reader's weights)")
    p.add_argument('--data-dir', help='data root (default: $COVIDQA_DATA or ../shared/data)')
    p.add_argument('--squad2-limit', type=int, default=0, help='at most this many SQuAD 2.0 questions of each half (0: all)')
    p.add_argument('--plot', help='draw the reliability diagram of the held-out half here (PNG)')
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser('ship', help='pack a trained reader into the one file committed to the repository')
    p.add_argument('--model', help='reader directory (default: the service default reader dir)')
    p.add_argument('--output', help='target file (default: models/reader/covidqa-reader.fp16.safetensors)')
    p.set_defaults(func=_cmd_ship)

    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    return run_command(lambda: ns.func(ns))


USER_ERRORS = (QADataError, QATrainArgsError, FileNotFoundError, ValueError, ShippedModelError)


def run_command(command: Callable[[], Optional[int]], stopped: str = 'stopped') -> int:
    """:func:`covidqa.runtime.commands.run_command` with the reader's user errors (:data:`USER_ERRORS`)."""
    return commands.run_command(command, USER_ERRORS, stopped)


if __name__ == '__main__':
    sys.exit(main())
