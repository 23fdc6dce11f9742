"""What every training loop shares (covidqa.training): the optimiser and schedule (optim) and the loop itself (loop)."""
import threading

import pytest
import torch
from torch import nn

from covidqa.training.checkpoint import TrainingCheckpoint
from covidqa.training.loop import LoopCheckpoint, TrainingCancelled, train_loop
from covidqa.training.optim import adamw, parameter_groups, schedule_point, set_lr, warmup_decay


class Tiny(nn.Module):
    """BERT-style names: an encoder with a LayerNorm, a span head outside it."""

    def __init__(self):
        super().__init__()
        self.bert = nn.ModuleDict({'dense': nn.Linear(3, 3), 'LayerNorm': nn.LayerNorm(3), 'frozen': nn.Linear(3, 3)})
        self.qa_outputs = nn.Linear(3, 2)


def names(model, group):
    ids = {id(p) for p in group['params']}
    return sorted(n for n, p in model.named_parameters() if id(p) in ids)


def test_groups_decay_weights_only_and_skip_frozen_parameters():
    model = Tiny()
    for p in model.bert['frozen'].parameters():
        p.requires_grad_(False)
    groups = parameter_groups(model.named_parameters(), 0.01)
    assert [names(model, g) for g in groups] == [
        ['bert.dense.weight', 'qa_outputs.weight'],
        ['bert.LayerNorm.bias', 'bert.LayerNorm.weight', 'bert.dense.bias', 'qa_outputs.bias'],
    ]
    assert [g['weight_decay'] for g in groups] == [0.01, 0.0]
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match='no trainable parameter'):
        parameter_groups(model.named_parameters(), 0.01)


def test_adamw_decays_weights_not_biases_and_set_lr_sets_every_group():
    model = Tiny()
    optimizer = adamw(model.named_parameters(), lr=0.1, weight_decay=0.5, betas=(0.8, 0.9), eps=1e-6)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g['lr'] for g in optimizer.param_groups] == pytest.approx([0.1, 0.1])
    assert optimizer.param_groups[0]['betas'] == (0.8, 0.9) and optimizer.param_groups[0]['eps'] == 1e-6
    set_lr(optimizer, 0.02)
    assert [g['lr'] for g in optimizer.param_groups] == pytest.approx([0.02, 0.02])
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
    assert schedule_point(2, 10) == pytest.approx(0.25)
    assert schedule_point(2, 10, time_share=0.5) == pytest.approx(0.55)  # the clock is ahead of the steps
    assert schedule_point(6, 10, time_share=0.1) == pytest.approx(0.65)  # the steps are ahead of the clock


# ------------------------------------------------------------------------------------------------ the loop
class Regression:
    """An objective: fit y = 2x with a 1-weight linear model; batches of 2 of 6 points in a seeded order."""

    def __init__(self, model, seed=0):
        self.model, self.generator = model, torch.Generator().manual_seed(seed)
        self.x = torch.arange(6, dtype=torch.float32)[:, None] / 6

    def batches(self, epoch):
        order = torch.randperm(6, generator=self.generator).tolist()
        return [order[i:i + 2] for i in range(0, 6, 2)]

    def loss(self, batch):
        x = self.x[batch]
        return ((self.model(x) - 2 * x) ** 2).mean()


def linear():
    torch.manual_seed(0)
    return nn.Linear(1, 1, bias=False)


def test_loop_trains_epochs_with_the_schedule_and_reports_each_step():
    model = linear()
    optimizer = adamw(model.named_parameters(), lr=0.1)
    seen = []
    result = train_loop(model, optimizer, Regression(model), total_steps=12, learning_rate=0.1, warmup_ratio=0.25,
                        max_grad_norm=1.0, max_epochs=4, on_step=seen.append)
    assert result.steps == 12 and len(result.losses) == 12 and len(result.epoch_losses) == 4
    assert result.losses[-1] < result.losses[0] and not model.training
    assert [s.step for s in seen] == list(range(1, 13))
    assert [s.epoch for s in seen] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert [s.lr for s in seen] == pytest.approx([0.1 * warmup_decay((i + 0.5) / 12, 0.25) for i in range(12)])
    assert [s.running is not None for s in seen] == [i in (10, 12) for i in range(1, 13)]
    assert result.history == pytest.approx([sum(result.losses[:10]) / 10, sum(result.losses[2:]) / 10])
    # max_steps ends it inside an epoch
    model = linear()
    cut = train_loop(model, adamw(model.named_parameters(), lr=0.1), Regression(model), total_steps=12,
                     learning_rate=0.1, warmup_ratio=0.0, max_grad_norm=0.0, max_steps=5)
    assert cut.steps == 5 and len(cut.epoch_losses) == 2
    with pytest.raises(ValueError, match='max_steps or max_epochs'):
        train_loop(model, optimizer, Regression(model), total_steps=1, learning_rate=0.1, warmup_ratio=0.0,
                   max_grad_norm=0.0)


def test_loop_resumes_from_its_checkpoint_with_the_same_batches_and_schedule(tmp_path, monkeypatch):
    def run(directory, stop_after=None):
        model = linear()
        optimizer = adamw(model.named_parameters(), lr=0.1)
        steps = []

        def on_step(step):
            steps.append(step.step)
            if step.step == stop_after:
                raise KeyboardInterrupt

        result = train_loop(model, optimizer, Regression(model), total_steps=9, learning_rate=0.1, warmup_ratio=0.1,
                            max_grad_norm=1.0, max_steps=9, on_step=on_step,
                            checkpoint=LoopCheckpoint(TrainingCheckpoint(directory), {'run': 1}, every_seconds=1e9))
        return model, result, steps

    full_model, full, _ = run(tmp_path / 'full')
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / 'stopped', stop_after=4)  # Ctrl-C between two steps: a checkpoint at step 4
    model, resumed, steps = run(tmp_path / 'stopped')
    assert steps == [5, 6, 7, 8, 9] and resumed.steps == 9
    assert resumed.losses == pytest.approx(full.losses) and torch.equal(model.weight, full_model.weight)
    _, again, steps = run(tmp_path / 'full')
    assert steps == [] and again.losses == full.losses  # a finished run trains nothing more


def test_loop_stops_on_its_time_budget_cancels_and_refuses_a_diverging_loss(monkeypatch):
    model = linear()
    optimizer = adamw(model.named_parameters(), lr=0.1)
    clock = iter(range(1000))
    monkeypatch.setattr('covidqa.training.loop.time.perf_counter', lambda: float(next(clock)))
    timed = train_loop(model, optimizer, Regression(model), total_steps=100, learning_rate=0.1, warmup_ratio=0.0,
                       max_grad_norm=1.0, max_steps=100, max_seconds=6.0)
    assert timed.stopped_by_time and 0 < timed.steps < 6
    monkeypatch.undo()
    stop = threading.Event()
    stop.set()
    with pytest.raises(TrainingCancelled):
        train_loop(model, optimizer, Regression(model), total_steps=3, learning_rate=0.1, warmup_ratio=0.0,
                   max_grad_norm=1.0, max_epochs=1, stop_event=stop)

    class Diverging(Regression):
        def loss(self, batch):
            return super().loss(batch) * float('inf')

    with pytest.raises(FloatingPointError, match='training loss became inf at step 0'):
        train_loop(model, optimizer, Diverging(model), total_steps=3, learning_rate=0.1, warmup_ratio=0.0,
                   max_grad_norm=1.0, max_epochs=1)
    assert not model.training
