"""QuestionAnswering train/eval/test/answer/save with the real packaged model on a few dozen synthetic rows."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from covidqa.data.records import QADataError, QARecord
from covidqa.models.loading import load_tokenizer
from covidqa.qa.api import (
    EvalResult,
    QATrainArgs,
    QATrainArgsError,
    QuestionAnswering,
    QuestionAnsweringResult,
    TrainResult,
)
from covidqa.qa.cli import main
from covidqa.qa.train import bucketed_batches, build_training_windows
from tests.helpers import make_rows, shared_fraction

pytestmark = pytest.mark.slow  # trains models or exports ONNX graphs: left out by make test-fast


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('qa')
    rows = make_rows()
    with open(root / 'train.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['context', 'question', 'answer_text', 'answer_start'])
        w.writerows(rows)
    with open(root / 'test.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['context', 'question'])
        w.writerows([(r[0], r[1]) for r in rows[::-3]])  # reversed subset: order must be kept
    return root


@pytest.fixture(scope='module')
def trained(data_dir):
    qa = QuestionAnswering('base', max_seq_length=128, doc_stride=32)
    before = qa.eval(data_dir / 'train.csv')
    result = qa.train(data_dir / 'train.csv', {'num_train_epochs': 4, 'learning_rate': 3e-4, 'batch_size': 8,
                                               'max_seq_length': 96, 'warmup_ratio': 0.1, 'seed': 1})
    after = qa.eval(data_dir / 'train.csv')
    return qa, before, result, after


def test_training_lowers_the_loss(trained):
    qa, before, result, after = trained
    assert isinstance(result, TrainResult)
    assert result.records == 24 and result.skipped_records == 0 and result.steps == 12
    assert result.epochs == pytest.approx(4.0)
    assert result.final_loss < result.first_loss - 0.5
    assert isinstance(before, EvalResult) and isinstance(after, EvalResult)
    assert after.loss < before.loss - 1.0
    assert after.f1 > before.f1 + 0.2
    assert 0.0 <= after.exact_match <= after.f1 <= 1.0 and after.count == 24 and after.windows >= 24


def test_test_returns_answers_in_file_order(trained, data_dir):
    qa = trained[0]
    with open(data_dir / 'test.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    results = qa.test(data_dir / 'test.csv')
    assert len(results) == len(rows) == 8
    for row, result in zip(rows, results):
        assert isinstance(result, QuestionAnsweringResult)
        assert row['context'][result.start:result.end] == result.answer != ''
        assert 0.0 < result.score <= 1.0


def test_answer_question_top_k(trained):
    qa = trained[0]
    context = make_rows()[0][0]
    answers = qa.answer_question(context, 'What is the natural reservoir of SARS-CoV-2?', top_k=3)
    assert len(answers) == 3 and all(isinstance(a, QuestionAnsweringResult) for a in answers)
    assert [a.score for a in answers] == sorted((a.score for a in answers), reverse=True)
    assert all(context[a.start:a.end] == a.answer for a in answers)
    distinct = qa.answer_question(context, 'What is the natural reservoir of SARS-CoV-2?', top_k=3,
                                  overlap_threshold=0.01)
    assert distinct[0] == answers[0] and 1 <= len(distinct) <= 3
    assert all(shared_fraction(a, b) <= 0.01 for i, a in enumerate(distinct) for b in distinct[:i])
    with pytest.raises(ValueError, match='context must be a non-empty string'):
        qa.answer_question('', 'q?')


@pytest.mark.parametrize('args, message', [
    ({'learning_rte': 1e-4}, r"unknown training argument\(s\) \['learning_rte'\]"),
    ({'learning_rate': 'fast'}, r"training argument 'learning_rate' must be a number above 0.0 and at most 1.0, got 'fast'"),
    ({'num_train_epochs': 0}, r"'num_train_epochs' must be a number above 0.0 and at most 10000.0, got 0"),
    ({'batch_size': 2.5}, r"'batch_size' must be an integer between 1 and 4096, got 2.5"),
    ({'batch_size': True}, r"'batch_size' must be an integer between 1 and 4096, got True"),
    ({'bf16': 'yes'}, r"'bf16' must be true or false"),
    ({'adam_beta2': 1.0}, r'adam_beta1/adam_beta2 must be < 1'),
    ({'max_seq_length': 64, 'max_query_length': 60}, r'leaves no room for a context'),
    ({'max_positives_per_question': -1}, r"'max_positives_per_question' must be an integer between 0 and 10000"),
    ({'freeze_layers': -1}, r"'freeze_layers' must be an integer between 0 and 48"),
    # options that lost in benchmarks/READER_RESULTS.md left the code: asking for one is an unknown key
    ({'inside_loss_weight': 1.0}, r"unknown training argument\(s\) \['inside_loss_weight'\]"),
    ({'freeze_word_embeddings': True, 'hard_negatives': True},
     r"unknown training argument\(s\) \['freeze_word_embeddings', 'hard_negatives'\]"),
    ({'budget_clock': 'cpu', 'head_learning_rate_scale': 10.0},
     r"unknown training argument\(s\) \['budget_clock', 'head_learning_rate_scale'\]"),
    ({'shared_norm_weight': 'on'}, r"'shared_norm_weight' must be a number between 0.0 and 10000.0, got 'on'"),
])
def test_bad_training_args_raise_naming_the_key(data_dir, args, message):
    with pytest.raises(QATrainArgsError, match=message):
        QATrainArgs.from_any(args)
    with pytest.raises(QATrainArgsError, match='must be a dict or QATrainArgs'):
        QATrainArgs.from_any([('learning_rate', 1)])


def test_args_defaults_are_happytransformers():
    args = QATrainArgs()
    assert (args.learning_rate, args.weight_decay, args.adam_beta1, args.adam_beta2, args.adam_epsilon,
            args.max_grad_norm, args.num_train_epochs) == (5e-5, 0.0, 0.9, 0.999, 1e-8, 1.0, 3.0)
    assert QATrainArgs.from_any({'batch_size': 4.0}).batch_size == 4  # 4.0 is accepted as an integer


def test_training_windows_keep_answers_deep_in_long_contexts():
    tok = load_tokenizer('base')
    filler = ' '.join(f'Sentence number {i} talks about unrelated laboratory procedures.' for i in range(80))
    context = filler + ' The reservoir of the virus is horseshoe bats. ' + filler
    record = QARecord(context, 'What is the reservoir?', 'horseshoe bats', context.index('horseshoe bats'))
    args = QATrainArgs(max_seq_length=128, doc_stride=32, negatives_per_question=3)
    windows, starts, ends, skipped = build_training_windows(tok, [record], args, np.random.default_rng(0))
    assert skipped == 0
    positives = np.nonzero(starts)[0]
    assert len(positives) >= 1 and (starts == 0).sum() == 3  # answer windows + exactly 3 negatives
    for w in positives:
        off = windows.offsets[w]
        assert context[off[starts[w], 0]:off[ends[w], 1]] == 'horseshoe bats'
    capped = QATrainArgs(max_seq_length=128, doc_stride=100, negatives_per_question=0, max_positives_per_question=1)
    _, starts_capped, _, _ = build_training_windows(tok, [record], capped, np.random.default_rng(0))
    assert len(starts_capped) == 1 and starts_capped[0] > 0
    # an answer longer than a window is skipped (counted), not silently mislabelled
    long_answer = QARecord(filler, 'q?', filler[:2000], 0)
    _, _, _, skipped = build_training_windows(tok, [long_answer], args, np.random.default_rng(0))
    assert skipped == 1


def test_time_budget_stops_training(data_dir):
    qa = QuestionAnswering('base')
    result = qa.train(data_dir / 'train.csv', {'num_train_epochs': 50, 'max_train_seconds': 2.0, 'batch_size': 4,
                                               'max_seq_length': 96})
    assert result.stopped_by_time and 0 < result.steps < 300


def test_freeze_layers_keeps_the_lower_layers_fixed_and_trains_the_rest(data_dir):
    import torch

    qa = QuestionAnswering('base')
    model = qa.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    qa.train(data_dir / 'train.csv', {'num_train_epochs': 1, 'learning_rate': 3e-4, 'batch_size': 8,
                                      'max_seq_length': 96, 'freeze_layers': 2})
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert not any('.embeddings.' in n or '.layer.0.' in n or '.layer.1.' in n for n in changed)
    assert any('.layer.5.' in n for n in changed) and any('qa_outputs' in n for n in changed)
    with pytest.raises(QATrainArgsError, match='freeze_layers=7 exceeds'):
        qa.train(data_dir / 'train.csv', {'num_train_epochs': 1, 'max_seq_length': 96, 'freeze_layers': 7})


def test_bf16_trains_and_saves_a_reader_that_reloads(data_dir, tmp_path):
    import torch

    qa = QuestionAnswering('base')
    model = qa.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = qa.train(data_dir / 'train.csv', {
        'num_train_epochs': 3, 'learning_rate': 3e-4, 'batch_size': 4, 'max_seq_length': 96, 'bf16': True,
        'output_dir': str(tmp_path / 'reader')})
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert any('word_embeddings' in n for n in changed)  # nothing frozen
    assert any('position_embeddings' in n for n in changed) and any('qa_outputs' in n for n in changed)
    assert result.final_loss < result.first_loss
    # the saved reader is a plain span model with the trained weights: it loads and answers
    saved = QuestionAnswering(tmp_path / 'reader')
    assert set(saved.model.state_dict()) == set(model.state_dict())
    assert torch.equal(saved.model.state_dict()['qa_outputs.weight'], model.state_dict()['qa_outputs.weight'])
    assert saved.answer_question(make_rows()[0][0], make_rows()[0][1])[0].answer


def test_grouped_batches_keep_each_questions_windows_together():
    rng = np.random.default_rng(0)
    groups = [0, 0, 1, 2, 2, 2, 3, 4, 4, 5, 6, 6, 6, 6, 6]  # group 6 is larger than a batch
    lengths = [10 * (i + 1) for i in range(len(groups))]
    batches = bucketed_batches(lengths, 4, rng, groups)
    assert sorted(i for b in batches for i in b) == list(range(len(groups)))
    for batch in batches:
        for g in {groups[i] for i in batch}:
            assert [i for i in batch if groups[i] == g] == [i for i, x in enumerate(groups) if x == g]
        assert len(batch) <= 4 or {groups[i] for i in batch} == {6}


def test_shared_norm_trains_on_windows_of_long_contexts(data_dir):
    filler = ' '.join(f'Sentence number {i} talks about unrelated laboratory procedures.' for i in range(30))
    records = [QARecord(filler + ' ' + context, question, answer, len(filler) + 1 + start)
               for context, question, answer, start in make_rows()]
    qa = QuestionAnswering('base')
    result = qa.train(records, {'num_train_epochs': 4, 'learning_rate': 3e-4, 'batch_size': 4,
                                'max_seq_length': 128, 'doc_stride': 32, 'shared_norm_weight': 1.0})
    assert result.negative_windows == result.positive_windows == len(records)  # each question: 2 windows
    assert result.final_loss < result.first_loss


def test_bad_training_files(tmp_path):
    qa = QuestionAnswering('base')
    with pytest.raises(QADataError, match='no such file'):
        qa.train(tmp_path / 'missing.csv')
    (tmp_path / 'test_only.csv').write_text('context,question\nsome context,q?\n')
    with pytest.raises(QADataError, match=r"missing column\(s\) \['answer_text', 'answer_start'\]"):
        qa.eval(tmp_path / 'test_only.csv')


def test_save_is_atomic_and_reloads(trained, data_dir, tmp_path, monkeypatch):
    qa = trained[0]
    target = tmp_path / 'reader'
    qa.save(target)
    meta = json.loads((target / 'reader_training.json').read_text())
    assert meta['args']['learning_rate'] == 3e-4 and meta['train']['steps'] == 12
    reloaded = QuestionAnswering(target, max_seq_length=128, doc_stride=32)
    assert [r.answer for r in reloaded.test(data_dir / 'test.csv')] == [r.answer for r in qa.test(data_dir / 'test.csv')]
    weights_before = (target / 'model.safetensors').read_bytes()

    def crash(*args, **kwargs):
        Path(args[0], 'model.safetensors').write_bytes(b'half written')
        raise OSError('disk full')

    monkeypatch.setattr(qa.model, 'save_pretrained', crash)
    with pytest.raises(OSError, match='disk full'):
        qa.save(target)
    assert (target / 'model.safetensors').read_bytes() == weights_before  # old model untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ['reader']  # no temporary leftovers
    QuestionAnswering(target)  # still loads


def test_cli_eval_and_errors(trained, data_dir, tmp_path, capsys):
    qa = trained[0]
    qa.save(tmp_path / 'm')
    assert main(['eval', str(data_dir / 'train.csv'), '--model', str(tmp_path / 'm'), '--max-seq-length', '128']) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) >= {'loss', 'exact_match', 'f1'} and printed['count'] == 24
    assert main(['default', '--data-dir', str(tmp_path / 'nowhere'), '--output', str(tmp_path / 'r')]) == 2
    assert 'training data not found' in capsys.readouterr().err
    assert main(['train', str(data_dir / 'train.csv'), '--output', str(tmp_path / 'x'), '--args', '{"lr": 1}']) == 2
    assert "unknown training argument(s) ['lr']" in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()
