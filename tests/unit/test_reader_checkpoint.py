"""Resumable reader training (covidqa.training.checkpoint): a run stopped after a checkpoint and started again ends exactly
where the uninterrupted run ends. Real packaged model, a few dozen synthetic rows (seconds)."""
import numpy as np
import pytest
import torch

from covidqa.data.records import QARecord
from covidqa.qa.api import QuestionAnswering
from covidqa.training.checkpoint import CheckpointMismatch, TrainingCheckpoint, TrainingState

pytestmark = pytest.mark.slow  # trains models or exports ONNX graphs: left out by make test-fast

CITIES = ['Lisbon', 'Oslo', 'Nairobi', 'Lima', 'Hanoi', 'Quito', 'Accra', 'Riga', 'Dakar', 'Perth']
MONTHS = ['March', 'June', 'October', 'January', 'May', 'August', 'April', 'July', 'December', 'February']


def records():
    out = []
    for i, (city, month) in enumerate(zip(CITIES, MONTHS)):
        context = f'The trial enrolled patients in {city}. Enrolment closed in {month}. Results were published later.'
        out.append(QARecord(context=context, question=f'Where did the trial enrol patients ({i})?',
                            answer_text=city, answer_start=context.index(city), id=f'c{i}'))
        out.append(QARecord(context=context, question=f'When did enrolment close ({i})?',
                            answer_text=month, answer_start=context.index(month), id=f'm{i}'))
    return out  # 20 records


ARGS = dict(batch_size=4, num_train_epochs=2.0, learning_rate=1e-4, seed=3, max_seq_length=64, max_query_length=16,
            doc_stride=32, question_word_type=True, shared_norm_weight=1.0, checkpoint_minutes=1e-6)


def fresh_reader(seed=0):
    torch.manual_seed(seed)  # the fresh span head is drawn from torch's generator: the same one for every run
    return QuestionAnswering('base')


def train(checkpoints, **overrides):
    qa = fresh_reader()
    result = qa.train(records(), {**ARGS, 'checkpoint_dir': str(checkpoints), **overrides})
    return qa, result


def test_a_stopped_run_resumes_to_the_same_model(tmp_path, monkeypatch):
    full_qa, full = train(tmp_path / 'full')
    assert full.steps == 10  # 20 windows, 4 a batch, 2 epochs

    saved_steps = []
    real_save = TrainingCheckpoint.save

    def save_then_stop(self, state, fingerprint):
        path = real_save(self, state, fingerprint)
        saved_steps.append(state.step)
        if len(saved_steps) == 4:  # a kill right after the 4th checkpoint
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(TrainingCheckpoint, 'save', save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / 'stopped')
    monkeypatch.undo()
    assert saved_steps[-1] == 4  # the interrupt handler saved the same step again

    resumed_qa, resumed = train(tmp_path / 'stopped')
    assert resumed.steps == full.steps
    assert resumed.epochs == pytest.approx(full.epochs)
    assert resumed.final_loss == pytest.approx(full.final_loss, rel=1e-4)
    full_state, resumed_state = full_qa.model.state_dict(), resumed_qa.model.state_dict()
    for name, tensor in full_state.items():
        assert torch.allclose(tensor, resumed_state[name], atol=1e-5), name
    # training moved the weights (the comparison above is not between two untouched models)
    assert not torch.equal(full_state['qa_outputs.weight'], fresh_reader().model.state_dict()['qa_outputs.weight'])


def test_a_finished_run_trains_nothing_more(tmp_path, monkeypatch):
    _, first = train(tmp_path / 'ckpt')
    updates = []
    real_step = torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, 'step', lambda self, *a, **k: updates.append(1) or real_step(self, *a, **k))
    qa, again = train(tmp_path / 'ckpt')
    assert updates == []  # not one optimiser step: the checkpoint said the run was done
    assert again.steps == first.steps
    assert again.loss_history == first.loss_history


def test_resume_with_other_arguments_is_refused_by_name(tmp_path):
    train(tmp_path / 'ckpt', num_train_epochs=1.0)
    with pytest.raises(CheckpointMismatch, match="learning_rate: 0.0001 -> 0.0003"):
        train(tmp_path / 'ckpt', num_train_epochs=1.0, learning_rate=3e-4)
    # where outputs go and how often checkpoints are written may change between the pieces of a run
    _, result = train(tmp_path / 'ckpt', num_train_epochs=1.0, checkpoint_minutes=10.0)
    assert result.steps == 5


def test_a_finished_run_can_be_extended(tmp_path):
    short_qa, short = train(tmp_path / 'ckpt', num_train_epochs=1.0)
    assert short.steps == 5
    short_head = short_qa.model.state_dict()['qa_outputs.weight'].clone()
    extended_qa, extended = train(tmp_path / 'ckpt', num_train_epochs=2.0)
    assert extended.steps == 10  # the 5 steps of the first run are not trained again
    assert extended.loss_history[:len(short.loss_history)] == short.loss_history
    # the second epoch trained: the weights moved on from where the short run left them
    assert not torch.equal(extended_qa.model.state_dict()['qa_outputs.weight'], short_head)


def test_a_damaged_checkpoint_is_named(tmp_path):
    directory = tmp_path / 'ckpt'
    directory.mkdir()
    (directory / 'checkpoint.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointMismatch, match='cannot be read.*delete it'):
        train(directory)


def test_losses_are_finite_and_fall(tmp_path):
    _, result = train(tmp_path / 'ckpt', num_train_epochs=4.0)
    assert np.isfinite(result.loss_history).all()
    assert result.final_loss < result.first_loss


def test_a_checkpoint_written_with_arguments_that_left_the_code_is_refused_naming_them(tmp_path):
    # what the training loop saved while budget_clock and head_learning_rate_scale were training arguments
    state = TrainingState(step=3, elapsed=1.0, model={}, optimizer={}, torch_rng=torch.get_rng_state())
    fingerprint = {'learning_rate': 1e-4, 'windows': 20}
    old = TrainingCheckpoint(tmp_path / 'old')
    old.save(state, {**fingerprint, 'budget_clock': 'wall', 'head_learning_rate_scale': 1.0})
    with pytest.raises(CheckpointMismatch, match=r"no longer has \(budget_clock='wall', head_learning_rate_scale=1.0\)"
                                                 r".*delete the checkpoint directory"):
        old.load(fingerprint)
