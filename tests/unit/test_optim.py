"""The optimiser and schedule shared by the reader's and the embedder's training loops (covidqa.training.optim)."""
import pytest
import torch
from torch import nn

from covidqa.training.optim import adamw, parameter_groups, set_lr, warmup_decay


class Tiny(nn.Module):
    """BERT-style names: an encoder with a LayerNorm, a span head outside it."""

    def __init__(self):
        super().__init__()
        self.bert = nn.ModuleDict({'dense': nn.Linear(3, 3), 'LayerNorm': nn.LayerNorm(3), 'frozen': nn.Linear(3, 3)})
        self.qa_outputs = nn.Linear(3, 2)


def names(model, group):
    ids = {id(p) for p in group['params']}
    return sorted(n for n, p in model.named_parameters() if id(p) in ids)


def test_groups_decay_weights_only_scale_the_head_and_skip_frozen_parameters():
    model = Tiny()
    for p in model.bert['frozen'].parameters():
        p.requires_grad_(False)
    groups = parameter_groups(model.named_parameters(), 0.01, head={'qa_outputs.weight', 'qa_outputs.bias'},
                              head_lr_scale=10.0)
    assert [names(model, g) for g in groups] == [
        ['bert.dense.weight'], ['bert.LayerNorm.bias', 'bert.LayerNorm.weight', 'bert.dense.bias'],
        ['qa_outputs.weight'], ['qa_outputs.bias'],
    ]
    assert [(g['weight_decay'], g['lr_scale']) for g in groups] == [(0.01, 1.0), (0.0, 1.0), (0.01, 10.0), (0.0, 10.0)]
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match='no trainable parameter'):
        parameter_groups(model.named_parameters(), 0.01)


def test_adamw_decays_weights_not_biases_and_set_lr_scales_each_group():
    model = Tiny()
    optimizer = adamw(model.named_parameters(), lr=0.1, weight_decay=0.5, betas=(0.8, 0.9), eps=1e-6,
                      head={'qa_outputs.weight', 'qa_outputs.bias'}, head_lr_scale=3.0)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g['lr'] for g in optimizer.param_groups] == pytest.approx([0.1, 0.1, 0.3, 0.3])
    assert optimizer.param_groups[0]['betas'] == (0.8, 0.9) and optimizer.param_groups[0]['eps'] == 1e-6
    set_lr(optimizer, 0.02)
    assert [g['lr'] for g in optimizer.param_groups] == pytest.approx([0.02, 0.02, 0.06, 0.06])
    weight, bias = model.bert['dense'].weight.detach().clone(), model.bert['dense'].bias.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only weight decay moves anything
    optimizer.step()
    assert torch.allclose(model.bert['dense'].weight, weight * (1 - 0.02 * 0.5))
    assert torch.equal(model.bert['dense'].bias, bias)


def test_schedule_warms_up_linearly_then_decays_to_zero():
    assert warmup_decay(0.0, 0.1) == 0.0
    assert warmup_decay(0.05, 0.1) == pytest.approx(0.5)
    assert warmup_decay(0.1, 0.1) == pytest.approx(1.0)
    assert warmup_decay(0.55, 0.1) == pytest.approx(0.5)
    assert warmup_decay(1.0, 0.1) == 0.0 and warmup_decay(1.2, 0.1) == 0.0  # a clock past the budget: no step
    assert warmup_decay(0.0, 0.0) == 1.0 and warmup_decay(0.75, 0.0) == pytest.approx(0.25)
    values = [warmup_decay(i / 100, 0.2) for i in range(101)]
    peak = values.index(max(values))
    assert peak == 20 and values[:peak + 1] == sorted(values[:peak + 1])
    assert values[peak:] == sorted(values[peak:], reverse=True)
