"""The training losses: values, gradients that point the right way, masking, input checks, and the batches each
builds from labels."""
import random
from types import SimpleNamespace

import pytest
import torch

from covidqa.training.losses import LOSSES, CosineSiameseLoss, MultipleNegativesRankingLoss


def _train(loss_fn, params, make_inputs, steps=100, lr=2.0):
    optimizer = torch.optim.SGD(params, lr=lr)
    first = None
    for _ in range(steps):
        value = loss_fn(*make_inputs())
        first = float(value) if first is None else first
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    return first, float(loss_fn(*make_inputs()))


def test_mnr_prefers_aligned_pairs():
    torch.manual_seed(0)
    q = torch.randn(6, 16)
    loss = MultipleNegativesRankingLoss()
    aligned = loss(q, q + 0.01 * torch.randn(6, 16))
    shuffled = loss(q, q[torch.tensor([1, 2, 3, 4, 5, 0])])
    assert aligned < 0.05 < shuffled
    assert loss(q, q).shape == torch.Size([])


def test_mnr_with_hard_negatives_learns_to_rank_the_positive_first():
    torch.manual_seed(0)
    anchors = torch.randn(4, 8)
    positives = torch.randn(4, 8, requires_grad=True)
    negatives = anchors.clone().requires_grad_(True)  # hard negatives start closest to the anchors
    loss = MultipleNegativesRankingLoss()
    first, last = _train(loss, [positives, negatives], lambda: (anchors, positives, negatives))
    assert last < first / 4
    sims = torch.nn.functional.normalize(anchors, dim=-1) @ torch.nn.functional.normalize(
        torch.cat([positives, negatives]).detach(), dim=-1).T
    assert (sims.argmax(1) == torch.arange(4)).all()


def test_mnr_mask_hides_a_false_negative():
    q = torch.eye(3)
    p = torch.eye(3)
    p[1] = p[0]  # anchors 0 and 1 share a positive: for anchor 0, column 1 is a false negative
    loss = MultipleNegativesRankingLoss()
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[0, 1] = True
    assert loss(q, p, mask=mask) < loss(q, p) - 0.1
    with pytest.raises(ValueError, match='diagonal'):
        loss(q, p, mask=torch.eye(3, dtype=torch.bool))
    with pytest.raises(ValueError, match='mask must be'):
        loss(q, p, mask=torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match='must both be'):
        loss(q, p[:2])


def test_cosine_siamese_values_targets_and_training():
    loss = CosineSiameseLoss()
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(loss(a, b, torch.tensor([1.0, -1.0]))) == pytest.approx(0.5)
    assert loss.targets(torch.tensor([True, False])).tolist() == [1.0, -1.0]
    torch.manual_seed(0)
    left = torch.randn(6, 8)
    right = torch.randn(6, 8, requires_grad=True)
    target = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    first, last = _train(loss, [right], lambda: (left, right, target))
    assert last < first / 4
    cos = torch.nn.functional.cosine_similarity(left, right.detach())
    assert ((cos > 0) == (target > 0)).all()
    with pytest.raises(ValueError, match='target must be'):
        loss(left, right, target[:3])


def test_the_embedder_losses_by_name_build_their_own_batches():
    assert sorted(LOSSES) == ['cosine', 'mnr']
    examples = [SimpleNamespace(query='q1', positives=['a', 'b'], negatives=['x', 'y', 'z']),
                SimpleNamespace(query='q2', positives=['a'], negatives=[]),
                SimpleNamespace(query='q3', positives=[], negatives=['x'])]
    mnr = LOSSES['mnr']()
    assert [ex.query for ex in mnr.usable(examples)] == ['q1', 'q2']
    batches = mnr.batches(mnr.usable(examples), random.Random(0), 8, 2)
    items = [item for batch in batches for item in batch]
    assert sorted((q, p) for q, p, _, _ in items) == [('q1', 'a'), ('q1', 'b'), ('q2', 'a')]
    assert all(len(negatives) <= 2 and set(negatives) <= {'x', 'y', 'z'} for _, _, negatives, _ in items)
    for batch in batches:  # no query and no accepted document twice in a batch: no false in-batch negative
        assert len({q for q, *_ in batch}) == len(batch) == len({p for _, p, *_ in batch})
    cosine = LOSSES['cosine']()
    pairs = [item for batch in cosine.batches(cosine.usable(examples), random.Random(0), 2, 2) for item in batch]
    assert sorted(pairs) == sorted([('q1', 'a', True), ('q1', 'b', True), ('q2', 'a', True), ('q1', 'x', False),
                                    ('q1', 'y', False), ('q1', 'z', False), ('q3', 'x', False)])
    with pytest.raises(ValueError, match='no accepted match'):
        mnr.usable([examples[2]])
    with pytest.raises(ValueError, match='no labeled pair'):
        cosine.usable([SimpleNamespace(query='q', positives=[], negatives=[])])


def test_batch_losses_embed_each_text_once_and_mask_an_anchors_own_documents():
    torch.manual_seed(0)
    table = {t: torch.randn(8) for t in ['q1', 'q2', 'a', 'b', 'x']}
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return torch.stack([table[t] for t in texts])

    batch = [('q1', 'a', ['x'], frozenset({'a', 'b'})), ('q2', 'b', ['x'], frozenset({'b'}))]
    value = MultipleNegativesRankingLoss().batch_loss(embed, batch)
    assert calls == [['q1', 'q2', 'a', 'b', 'x']]  # 'x' is a hard negative of both: embedded once
    anchors, candidates = torch.stack([table['q1'], table['q2']]), torch.stack([table['a'], table['b'], table['x']])
    mask = torch.tensor([[False, True, False], [False, False, False]])  # 'b' is q1's own accepted document
    assert torch.allclose(value, MultipleNegativesRankingLoss()(anchors, candidates[:2], candidates[2:], mask=mask))
    pairs = [('q1', 'a', True), ('q1', 'x', False)]
    value = CosineSiameseLoss().batch_loss(embed, pairs)
    expected = CosineSiameseLoss()(torch.stack([table['q1']] * 2), torch.stack([table['a'], table['x']]),
                                   torch.tensor([1.0, -1.0]))
    assert torch.allclose(value, expected)


def test_shared_norm_is_one_softmax_over_the_context_tokens_of_a_questions_windows():
    from covidqa.training.losses.shared_norm import SharedNormLoss

    torch.manual_seed(0)
    start, end = torch.randn(4, 6), torch.randn(4, 6)
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0]],
                        dtype=torch.bool)
    starts, ends = torch.tensor([0, 3, 2, 0]), torch.tensor([0, 4, 3, 0])
    groups = torch.tensor([5, 5, 9, 7])  # question 5: a distractor + the answer window; 9 and 7: one window each
    loss = SharedNormLoss()(start, end, mask, starts, ends, groups)
    flat_start, flat_end = torch.cat([start[0, 2:5], start[1, 2:6]]), torch.cat([end[0, 2:5], end[1, 2:6]])
    # gold start is token 3 of window 1 = position 3 + 1 of the concatenation, gold end token 4 = position 3 + 2
    expected = -(flat_start.log_softmax(0)[4] + flat_end.log_softmax(0)[5]) / 2
    assert torch.allclose(loss, expected)
    # a question with one window, or without an answer in any of its windows, adds nothing
    assert float(SharedNormLoss()(start, end, mask, starts, ends, torch.tensor([1, 2, 3, 4]))) == 0.0
    assert float(SharedNormLoss()(start, end, mask, torch.zeros(4, dtype=torch.long), ends, groups)) == 0.0


def test_shared_norm_pushes_the_distractor_windows_spans_below_the_answer():
    from covidqa.training.losses.shared_norm import SharedNormLoss

    torch.manual_seed(0)
    start = torch.zeros(2, 8)
    start[0, 3] = 3.0  # the distractor window's best start beats the answer window's gold start
    start.requires_grad_(True)
    end = torch.zeros(2, 8, requires_grad=True)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[:, 0] = False
    starts, ends, groups = torch.tensor([0, 5]), torch.tensor([0, 6]), torch.tensor([1, 1])
    loss = SharedNormLoss()
    first, last = _train(loss, [start, end], lambda: (start, end, mask, starts, ends, groups), steps=50, lr=1.0)
    assert last < first / 4
    assert start[1, 5] > start[0, 3] and end[1, 6] > end[0].max()
