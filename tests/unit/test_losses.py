"""The feedback losses: values, gradients that point the right way, masking, and input checks."""
import pytest
import torch

from covidqa.training.losses import CosineSiameseLoss, MultipleNegativesRankingLoss, get_loss


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
    loss = MultipleNegativesRankingLoss(scale=20.0)
    aligned = loss(q, q + 0.01 * torch.randn(6, 16))
    shuffled = loss(q, q[torch.tensor([1, 2, 3, 4, 5, 0])])
    assert aligned < 0.05 < shuffled
    assert loss(q, q).shape == torch.Size([])


def test_mnr_with_hard_negatives_learns_to_rank_the_positive_first():
    torch.manual_seed(0)
    anchors = torch.randn(4, 8)
    positives = torch.randn(4, 8, requires_grad=True)
    negatives = anchors.clone().requires_grad_(True)  # hard negatives start closest to the anchors
    loss = MultipleNegativesRankingLoss(scale=10.0)
    first, last = _train(loss, [positives, negatives], lambda: (anchors, positives, negatives))
    assert last < first / 4
    sims = torch.nn.functional.normalize(anchors, dim=-1) @ torch.nn.functional.normalize(
        torch.cat([positives, negatives]).detach(), dim=-1).T
    assert (sims.argmax(1) == torch.arange(4)).all()


def test_mnr_mask_hides_a_false_negative():
    q = torch.eye(3)
    p = torch.eye(3)
    p[1] = p[0]  # anchors 0 and 1 share a positive: for anchor 0, column 1 is a false negative
    loss = MultipleNegativesRankingLoss(scale=20.0)
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
    assert CosineSiameseLoss(negative_target=0.0).targets(torch.tensor([False])).tolist() == [0.0]
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
    with pytest.raises(ValueError, match='negative_target'):
        CosineSiameseLoss(negative_target=1.0)


def test_get_loss_by_name():
    assert isinstance(get_loss('mnr', scale=5.0), MultipleNegativesRankingLoss)
    assert isinstance(get_loss('cosine'), CosineSiameseLoss)
    with pytest.raises(ValueError, match="unknown loss 'triplet'"):
        get_loss('triplet')


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
