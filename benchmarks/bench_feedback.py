"""Benchmark: does feedback finetuning of the CLS embedder make search better? (a script, not a test)

Setup (xhlulu COVID-QA community, 642 StackExchange questions):

- the index holds every entry with ``text`` = its short question (``title``), as the service indexes FAQ entries;
- a query is the long question body (``question``) of an entry, truncated to 50 tokens like every query; its right
  match is the entry with the same answer;
- a seeded split gives a labeling pool (the first up-to-50 queries a simulated user labels) and held-out queries that
  are never labeled;
- the simulated user searches each pool query, sees the top ``--top-k`` matches, accepts the one(s) whose answer is
  right and rejects the others (exactly what the labeler page sends to ``/feedback``);
- after 10 / 25 / 50 labeled queries a round trains the embedder from version 0 (``--model``, default the shipped
  ``[CLS]`` embedder, as the service does; ``--model base`` for the packaged all-MiniLM-L6-v2) on every label so far
  (:func:`covidqa.feedback.finetune.train_encoder`), and it is evaluated on the held-out queries; as in the service, the
  queries labeled after a round are searched with that round's model (``--static-labels``: all with version 0).
  Each loss runs its own labeling session.

Metrics: hit@1, hit@3, MRR of body -> title on the held-out queries (all 642 titles indexed). Checks that nothing else
got worse: *paraphrase* = the same held-out pairs the other way round (title -> body, among the held-out bodies),
and *faq* = deepset FAQ question -> answer (a different data set, never labeled).

Writes ``benchmarks/out/feedback.json`` and ``benchmarks/out/feedback.png``. Runs in a few minutes on 2 cores::

    python benchmarks/bench_feedback.py [--data ../shared/data] [--losses mnr,cosine] [--rounds 10,25,50]
"""
import argparse
import csv
import json
import random
import time
from pathlib import Path

import numpy as np

from covidqa.embedding.pooling import pool
from covidqa.feedback.finetune import train_encoder
from covidqa.feedback.options import FinetuneOptions
from covidqa.feedback.store import TrainingExample
from covidqa.index.evaluation import scores_of_ranks
from covidqa.models.loading import DEFAULT_EMBEDDER, load_encoder, load_tokenizer
from covidqa.paths import FAQ_FILE, data_dir

REPO = Path(__file__).resolve().parents[1]


class Vectors:
    """Normalized CLS vectors from an in-memory encoder (torch, inference mode, dynamic padding)."""

    def __init__(self, model, tokenizer, max_length=50, batch_size=64, pooling='cls'):
        self.model, self.tokenizer = model, tokenizer
        self.max_length, self.batch_size, self.pooling = max_length, batch_size, pooling

    def __call__(self, texts):
        import torch

        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)['input_ids']
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(ids), self.model.config.hidden_size), dtype=np.float32)
        self.model.eval()
        for begin in range(0, len(order), self.batch_size):
            chunk = order[begin:begin + self.batch_size]
            longest = max(len(ids[i]) for i in chunk)
            input_ids = np.zeros((len(chunk), longest), dtype=np.int64)
            mask = np.zeros_like(input_ids)
            for row, i in enumerate(chunk):
                input_ids[row, :len(ids[i])] = ids[i]
                mask[row, :len(ids[i])] = 1
            with torch.inference_mode():
                hidden = self.model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask),
                                    token_type_ids=torch.zeros_like(torch.from_numpy(input_ids))).last_hidden_state
            out[chunk] = pool(hidden.numpy(), mask, self.pooling)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-9)


def ranking_metrics(scores: np.ndarray, right: list) -> dict:
    """``scores`` (queries, docs); ``right[q]`` = set of correct doc positions. Rank = best rank of a right doc."""
    ranks = []
    for q, good in enumerate(right):
        best = max(scores[q, g] for g in good)
        ranks.append(int((scores[q] > best).sum()))
    scores_ = scores_of_ranks([rank + 1 for rank in ranks], ks=(1, 3))  # 1-based ranks
    return {'hit@1': scores_.hit_at[1], 'hit@3': scores_.hit_at[3], 'mrr': scores_.mrr, 'n': scores_.queries}


def load_data(data_dir: Path):
    with open(data_dir / 'covidqa_xhlulu_community' / 'community.csv', newline='', encoding='utf-8') as f:
        community = [r for r in csv.DictReader(f) if r['title'].strip() and r['question'].strip()]
    with open(data_dir / FAQ_FILE, newline='', encoding='utf-8') as f:
        faq = [r for r in csv.DictReader(f) if r['question'].strip() and r['answer'].strip()]
    return community, faq


class Bench:
    def __init__(self, community, faq, pool_size, heldout, top_k, seed):
        self.rows = community
        self.titles = [r['title'].strip() for r in community]
        by_answer = {}
        for i, r in enumerate(community):
            by_answer.setdefault(r['answer'].strip(), set()).add(i)
        self.right = [by_answer[r['answer'].strip()] for r in community]  # entries with the same answer
        order = list(range(len(community)))
        random.Random(seed).shuffle(order)
        self.pool = order[:pool_size]
        self.heldout = order[pool_size:pool_size + heldout]
        self.top_k = top_k
        self.faq_q = [r['question'].strip() for r in faq]
        self.faq_a = [r['answer'].strip() for r in faq]

    def evaluate(self, vec: Vectors, control: bool = True):
        """Metrics, and the title vectors (the index of this model, reused to simulate the next searches)."""
        t = vec(self.titles)
        bodies = vec([self.rows[i]['question'] for i in self.heldout])
        main = ranking_metrics(bodies @ t.T, [self.right[i] for i in self.heldout])
        # paraphrase pairs the other way round: held-out title -> its own body among the held-out bodies
        position = {i: p for p, i in enumerate(self.heldout)}
        para_right = [{position[j] for j in self.right[i] if j in position} for i in self.heldout]
        para = ranking_metrics(t[self.heldout] @ bodies.T, para_right)
        out = {'heldout': main, 'paraphrase': para}
        if control:
            fq, fa = vec(self.faq_q), vec(self.faq_a)
            out['faq'] = ranking_metrics(fq @ fa.T, [{i} for i in range(len(fq))])
        return out, t

    def simulate_labels(self, vec: Vectors, titles: np.ndarray, start: int, stop: int):
        """The user searches pool queries ``start..stop-1`` with the current model (index ``titles``), sees the
        top-K, accepts the right answer(s) and rejects the rest."""
        positions = self.pool[start:stop]
        queries = [self.rows[i]['question'] for i in positions]
        scores = vec(queries) @ titles.T
        examples = []
        for q, i in enumerate(positions):
            shown = list(np.argsort(-scores[q])[:self.top_k])
            examples.append(TrainingExample(queries[q], [self.titles[j] for j in shown if j in self.right[i]],
                                            [self.titles[j] for j in shown if j not in self.right[i]]))
        return examples

def plot(results, rounds, out_png):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    xs = [0] + rounds
    for ax, metric in zip(axes, ['hit@1', 'hit@3', 'mrr']):
        for loss, curve in results['curves'].items():
            ys = [results['base']['heldout'][metric]] + [curve[str(n)]['heldout'][metric] for n in rounds]
            ax.plot(xs, ys, marker='o', label=f'{loss} (held-out)')
            ys = [results['base']['paraphrase'][metric]] + [curve[str(n)]['paraphrase'][metric] for n in rounds]
            ax.plot(xs, ys, marker='x', linestyle='--', alpha=0.7, label=f'{loss} (paraphrase, reverse)')
        ax.set_title(f'{metric} vs labeled queries')
        ax.set_xlabel('labeled queries')
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('score on never-labeled queries')
    axes[0].legend(fontsize=8)
    fig.suptitle('Feedback finetuning of the CLS embedder (xhlulu community: body -> title)')
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=None, help='data folder (default $COVIDQA_DATA or ../shared/data)')
    p.add_argument('--losses', default='mnr,cosine')
    p.add_argument('--rounds', default='10,25,50', help='numbers of labeled queries')
    p.add_argument('--heldout', type=int, default=200, help='held-out queries evaluated')
    p.add_argument('--top-k', type=int, default=10, help='matches shown per labeled query (the page: 1-10)')
    p.add_argument('--epochs', type=int, default=FinetuneOptions().epochs, help='epochs of the mnr loss')
    p.add_argument('--cosine-epochs', type=int, default=4,
                   help='epochs of the cosine loss (it sees every labeled pair, ~8x the mnr pairs, so half the epochs '
                        'already cost it more compute)')
    p.add_argument('--lr', type=float, default=FinetuneOptions().lr)
    p.add_argument('--batch-size', type=int, default=FinetuneOptions().batch_size)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--static-labels', action='store_true',
                   help='collect every label with the base model (default: with the model of the previous round)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--model', default=DEFAULT_EMBEDDER,
                   help=f'version 0, where the rounds start (default {DEFAULT_EMBEDDER}; base: all-MiniLM-L6-v2)')
    p.add_argument('--out', default=str(REPO / 'benchmarks' / 'out'))
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    rounds = sorted(int(x) for x in args.rounds.split(','))
    losses = [x.strip() for x in args.losses.split(',') if x.strip()]
    community, faq = load_data(data_dir(args.data))
    bench = Bench(community, faq, pool_size=max(50, max(rounds)), heldout=args.heldout, top_k=args.top_k,
                  seed=args.seed)
    started = time.time()
    base_vec = Vectors(load_encoder(args.model), load_tokenizer(args.model))
    base, base_titles = bench.evaluate(base_vec)
    print(f'base: {json.dumps(base)}  ({time.time() - started:.0f}s)', flush=True)
    results = {'setup': {'data': 'xhlulu community: query = question body, index = titles', 'model': args.model,
                         'documents': len(bench.titles),
                         'heldout_queries': len(bench.heldout), 'top_k': args.top_k, 'rounds': rounds,
                         'epochs': {'mnr': args.epochs, 'cosine': args.cosine_epochs}, 'lr': args.lr,
                         'batch_size': args.batch_size, 'seed': args.seed,
                         'labels_collected_with': 'version 0' if args.static_labels else
                         'the model of the previous round (as while labeling in the service)'},
               'base': base, 'curves': {}}
    static = bench.simulate_labels(base_vec, base_titles, 0, max(rounds)) if args.static_labels else None
    for loss in losses:
        curve = results['curves'].setdefault(loss, {})
        examples, vec, titles = [], base_vec, base_titles
        for n in rounds:
            t0 = time.time()
            examples += static[len(examples):n] if static else bench.simulate_labels(vec, titles, len(examples), n)
            epochs = args.cosine_epochs if loss == 'cosine' else args.epochs
            fit = train_encoder(examples, args.model, loss=loss, epochs=epochs, lr=args.lr, batch_size=args.batch_size,
                                seed=args.seed)
            vec = Vectors(fit.model, fit.tokenizer)
            metrics, titles = bench.evaluate(vec, control=n == max(rounds))
            metrics['train'] = {'seconds': round(fit.seconds, 1), 'steps': fit.steps, 'final_loss': fit.final_loss,
                                'pairs': fit.pairs, 'epochs': epochs}
            metrics['labels'] = {'queries': len(examples), 'positive': sum(len(e.positives) for e in examples),
                                 'negative': sum(len(e.negatives) for e in examples),
                                 'queries_with_a_right_match_shown': sum(bool(e.positives) for e in examples)}
            curve[str(n)] = metrics
            h, b = metrics['heldout'], base['heldout']
            faq = metrics['faq']['hit@1'] if 'faq' in metrics else float('nan')
            print(f'{loss:6s} n={n:3d}: hit@1 {h["hit@1"]:.3f} ({(h["hit@1"] - b["hit@1"]) * 100:+.1f}) '
                  f'hit@3 {h["hit@3"]:.3f} mrr {h["mrr"]:.3f} | paraphrase hit@1 {metrics["paraphrase"]["hit@1"]:.3f} '
                  f'| faq hit@1 {faq:.3f} | labels +{metrics["labels"]["positive"]}/-{metrics["labels"]["negative"]} '
                  f'| {fit.steps} steps, {time.time() - t0:.0f}s', flush=True)
    last = str(max(rounds))
    gains = {loss: results['curves'][loss][last]['heldout']['hit@1'] - base['heldout']['hit@1'] for loss in losses}
    results['winner'] = max(gains, key=gains.get)
    results['gain_hit@1_points'] = {k: round(v * 100, 1) for k, v in gains.items()}
    results['seconds'] = round(time.time() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'feedback.json').write_text(json.dumps(results, indent=2))
    plot(results, rounds, out / 'feedback.png')
    print(f'winner after {last} labeled queries: {results["winner"]} '
          f'(hit@1 gain, points: {results["gain_hit@1_points"]}); {results["seconds"]:.0f}s; '
          f'wrote {out / "feedback.json"} and {out / "feedback.png"}')
    return results


if __name__ == '__main__':
    main()
