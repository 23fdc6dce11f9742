"""Reader learning curve: dev F1 against the number of training questions (a script, not a test).

Trains the default reader's recipe (:data:`covidqa.qa.recipe.DEFAULT_READER_ARGS`, same 9-minute guard, so every point gets
the same compute) on nested random shares of the distinct COVID-QA training questions (paragraph and full-article
records of a kept question both stay), evaluates each checkpoint on paragraph dev and full-article dev as
``bench_reader.py`` does, fits ``F1 = a + b * log2(questions)`` per dev set and prints how many training questions
that fit would need to reach a target F1.

Writes ``benchmarks/out/learning_curve.json`` (each point is appended as soon as it is measured; rerunning skips the
points already there) and a plot, ``docs/reader_learning_curve.png``.

Usage::

    python benchmarks/learning_curve.py                                  # shares 1/8, 1/4, 1/2, 1; seed 42
    python benchmarks/learning_curve.py --fractions 0.25,0.5 --seeds 7  # more points
    python benchmarks/learning_curve.py --plot-only                      # redraw from the JSON
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from bench_reader import evaluate

from covidqa.data.records import read_qa_file
from covidqa.paths import data_dir
from covidqa.qa.api import TRAINING_META_FILE, QuestionAnswering
from covidqa.qa.recipe import ARTICLE_DEV, DEFAULT_READER_ARGS, PARAGRAPH_DEV, train_default_reader

REPO = Path(__file__).resolve().parents[1]

TARGETS = {'paragraph_f1': 0.70, 'article_f1': 0.45}
COVID_QA_QUESTIONS = 2019  # the whole release (Möller et al. 2020): every question there is, dev and test included
LABELS = {'paragraph_f1': 'paragraph dev (191 q)', 'article_f1': 'full-article dev (159 q)'}


def fit_log2(points: Sequence[Dict], key: str) -> Optional[Dict[str, float]]:
    """Least-squares ``key = a + b * log2(questions)`` over ``points``; ``None`` with fewer than 2 distinct sizes."""
    xs = [math.log2(p['questions']) for p in points if p.get(key) is not None]
    ys = [p[key] for p in points if p.get(key) is not None]
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return {'a': my - b * mx, 'b': b}


def questions_needed(fit: Dict[str, float], target: float) -> float:
    """Training questions at which the fitted line reaches ``target`` (infinite when it does not rise)."""
    return 2 ** ((target - fit['a']) / fit['b']) if fit['b'] > 0 else math.inf


def measure(fraction: float, seed: int, root: Path, max_minutes: float, skip_articles: bool) -> Dict:
    label = f'curve-q{fraction:g}-s{seed}'
    model = REPO / 'benchmarks' / 'out' / 'models' / label
    # plan more epochs than the guard allows, so the 9-minute clock (not the epoch count) ends every point
    epochs = DEFAULT_READER_ARGS.num_train_epochs / fraction
    result = train_default_reader(model, force=True, epochs=epochs, data_dir=root, max_minutes=max_minutes,
                                  args={'seed': seed}, question_fraction=fraction)
    data = json.loads((model / TRAINING_META_FILE).read_text())['data']  # what train_default_reader trained on
    qa = QuestionAnswering(str(model))
    point = {
        'label': label, 'fraction': fraction, 'seed': seed, 'questions': data['questions'],
        'records': data['paragraph_records'] + data['article_records'],
        'steps': result.steps, 'epochs': round(result.epochs, 2),
        'train_minutes': round(result.seconds / 60, 2),
    }
    paragraph = evaluate(qa, list(read_qa_file(root / PARAGRAPH_DEV)), 'paragraph dev')
    point['paragraph_em'], point['paragraph_f1'] = paragraph['exact_match'], paragraph['f1']
    if not skip_articles:
        article = evaluate(qa, list(read_qa_file(root / ARTICLE_DEV)), 'full-article dev')
        point['article_em'], point['article_f1'] = article['exact_match'], article['f1']
    return point


def plot(points: List[Dict], fits: Dict[str, Dict], path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colours = {'paragraph_f1': 'tab:blue', 'article_f1': 'tab:orange'}
    top = max(p['questions'] for p in points)
    for key, colour in colours.items():
        mine = [p for p in points if p.get(key) is not None]
        if not mine:
            continue
        ax.scatter([p['questions'] for p in mine], [p[key] for p in mine], color=colour, label=LABELS[key], zorder=3)
        ax.axhline(TARGETS[key], color=colour, linestyle=':', linewidth=1)
        ax.text(1.02, TARGETS[key], f'target {TARGETS[key]:.2f}', color=colour, va='center',
                transform=ax.get_yaxis_transform(), fontsize=8)
        fit = fits.get(key)
        if fit:
            need = questions_needed(fit, TARGETS[key])
            end = min(max(need, top) * 1.2, top * 64) if math.isfinite(need) else top * 4
            start = min(p['questions'] for p in mine)
            xs = [start * (end / start) ** (i / 50) for i in range(51)]
            ax.plot(xs, [fit['a'] + fit['b'] * math.log2(x) for x in xs], color=colour, linestyle='--', linewidth=1,
                    label=f'fit: {fit["b"]:+.3f} F1 per doubling' + (
                        f', target at ~{need:,.0f} q' if math.isfinite(need) else ''))
    ax.axvline(top, color='grey', linewidth=0.8)
    ax.text(top, 0.02, f'default training set \n({top:,} q) ', color='grey', fontsize=8, va='bottom', ha='right')
    ax.axvline(COVID_QA_QUESTIONS, color='black', linewidth=0.8)
    ax.text(COVID_QA_QUESTIONS, 0.02, f' all of COVID-QA\n ({COVID_QA_QUESTIONS:,} q, dev\n and test included)',
            fontsize=8, va='bottom')
    ax.set_xscale('log', base=2)
    ax.set_xlabel('distinct training questions (log scale)')
    ax.set_ylabel('F1 (top-1 answer)')
    ax.set_ylim(0, 1)
    ax.set_title('Reader learning curve: default recipe, same 9-minute budget per point')
    ax.legend(fontsize=8, loc='upper left')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarise(points: List[Dict], plot_path: Path) -> Dict:
    fits = {key: fit_log2(points, key) for key in TARGETS}
    print(f'{"share":>6} {"seed":>5} {"questions":>9} {"steps":>6} {"epochs":>6} {"paragraph F1":>12} {"article F1":>10}')
    for p in sorted(points, key=lambda p: (p['questions'], p['seed'])):
        article = f'{p["article_f1"]:.3f}' if p.get('article_f1') is not None else '-'
        print(f'{p["fraction"]:>6g} {p["seed"]:>5} {p["questions"]:>9} {p["steps"]:>6} {p["epochs"]:>6} '
              f'{p["paragraph_f1"]:>12.3f} {article:>10}')
    for key, fit in fits.items():
        if fit:
            need = questions_needed(fit, TARGETS[key])
            print(f'{LABELS[key]}: F1 = {fit["a"]:.3f} + {fit["b"]:.3f} * log2(questions); '
                  f'target {TARGETS[key]} at ~{need:,.0f} training questions')
    if points:
        plot(points, fits, plot_path)
        print(f'plot: {plot_path}')
    return fits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--fractions', default='0.125,0.25,0.5,1', help='comma-separated shares of the questions')
    parser.add_argument('--seeds', default='42', help='comma-separated seeds (subsample and training)')
    parser.add_argument('--max-minutes', type=float, default=DEFAULT_READER_ARGS.max_train_seconds / 60)
    parser.add_argument('--skip-articles', action='store_true', help='paragraph dev only (faster)')
    parser.add_argument('--out', default=str(REPO / 'benchmarks' / 'out' / 'learning_curve.json'))
    parser.add_argument('--plot', default=str(REPO / 'docs' / 'reader_learning_curve.png'))
    parser.add_argument('--plot-only', action='store_true', help='redraw the plot from --out, train nothing')
    ns = parser.parse_args(argv)

    out = Path(ns.out)
    points: List[Dict] = json.loads(out.read_text())['points'] if out.is_file() else []
    if not ns.plot_only:
        root = data_dir()
        for seed in [int(s) for s in ns.seeds.split(',')]:
            for fraction in [float(f) for f in ns.fractions.split(',')]:
                if any(p['fraction'] == fraction and p['seed'] == seed for p in points):
                    print(f'share {fraction:g}, seed {seed}: already measured, skipped')
                    continue
                points.append(measure(fraction, seed, root, ns.max_minutes, ns.skip_articles))
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps({'points': points}, indent=2))
    fits = summarise(points, Path(ns.plot))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'points': points, 'fits': fits, 'targets': TARGETS}, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
