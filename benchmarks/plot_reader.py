"""Plot the shipped reader's two training stages and what each bought (a script, not a test).

Reads the training summaries (``reader_training.json``) of stage 1 and stage 2 and the ``bench_reader.py`` reports of
stage 1 alone and of the shipped reader, and writes ``docs/reader_stages.png``: the training loss of both stages
(left) and F1 on SQuAD v1.1 dev, COVID-QA paragraph dev and full-article dev (right) beside the COVID-QA-only reader
of earlier sessions (mean of its runs, from ``benchmarks/READER_RESULTS.md``).

Usage::

    python benchmarks/plot_reader.py --stage1 workspace/models/reader-pretrained \\
        --stage2 workspace/models/reader-stage2-fp32 \\
        --report 'stage 1 only (SQuAD)=benchmarks/out/reader-stage1.json' \\
        --report 'shipped (stage 1 + 2)=benchmarks/out/reader-shipped.json'

Each ``--report LABEL=PATH`` adds a group of bars, in order.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The COVID-QA-only default reader (no SQuAD): mean F1 of its runs in benchmarks/READER_RESULTS.md (two seeds of the
# learning curve's full share for paragraphs, five runs for full articles); it never read SQuAD dev.
COVID_ONLY = {'paragraph_dev': 0.521, 'article_dev': 0.451}
SETS = (('squad_dev', 'SQuAD v1.1 dev'), ('paragraph_dev', 'COVID-QA paragraph dev'),
        ('article_dev', 'COVID-QA full-article dev'))


def losses(model_dir: Path) -> list:
    meta = json.loads((model_dir / 'reader_training.json').read_text())
    return meta['train']['loss_history']  # running mean of 10 steps, every 10 steps


def f1s(report_path: Path) -> dict:
    report = json.loads(report_path.read_text())
    return {key: report[key]['f1'] for key, _ in SETS if key in report}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--stage1', required=True, type=Path)
    parser.add_argument('--stage2', required=True, type=Path)
    parser.add_argument('--report', action='append', default=[], metavar='LABEL=PATH',
                        help='a bench_reader.py report to plot as bars (repeat)')
    parser.add_argument('--out', type=Path, default=REPO / 'docs' / 'reader_stages.png')
    ns = parser.parse_args(argv)

    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    first, second = losses(ns.stage1), losses(ns.stage2)
    left.plot([10 * (i + 1) for i in range(len(first))], first, label='stage 1: SQuAD + SQuADShifts (batches of 32)')
    left.plot([10 * (i + 1) for i in range(len(second))], second, label='stage 2: COVID-QA (batches of 4)')
    left.set_xlabel('optimiser step')
    left.set_ylabel('training loss (mean of 10 steps)')
    left.set_title('Training the shipped reader')
    left.legend()
    left.grid(alpha=0.3)

    rows = [('COVID-QA only (earlier default)', COVID_ONLY)]
    for item in ns.report:
        label, sep, path = item.partition('=')
        if not sep:
            parser.error(f'--report needs LABEL=PATH, got {item!r}')
        rows.append((label, f1s(Path(path))))
    width = 0.8 / len(rows)
    for r, (label, values) in enumerate(rows):
        xs = [i + (r - (len(rows) - 1) / 2) * width for i, (key, _) in enumerate(SETS) if key in values]
        ys = [values[key] for key, _ in SETS if key in values]
        bars = right.bar(xs, ys, width, label=label)
        right.bar_label(bars, fmt='%.2f', fontsize=8)
    right.axhline(0.70, color='grey', ls='--', lw=0.8)
    right.text(2.45, 0.71, 'paragraph target 0.70', ha='right', fontsize=8, color='grey')
    right.set_xticks(range(len(SETS)), [name for _, name in SETS])
    right.set_ylabel('F1')
    right.set_ylim(0, 1)
    right.set_title('What each stage bought (F1, top-1 answer)')
    right.legend(loc='upper right', fontsize=8)
    fig.tight_layout()
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(ns.out, dpi=110)
    print(f'wrote {ns.out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
