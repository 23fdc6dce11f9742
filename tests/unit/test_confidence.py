"""The reader's confidence (covidqa.reader.confidence): the shipped calibration, fitting, monotonicity, the files."""
import json
import math
import random

import pytest

from covidqa.models.shipped import SHIPPED_READER_FILE, expected_sha256
from covidqa.reader.confidence import (
    CALIBRATION_FILE,
    FEATURES,
    INCREASING,
    Calibrator,
    best_threshold,
    calibration_for,
    expected_calibration_error,
    reliability_bins,
)

SHIPPED_CALIBRATION = SHIPPED_READER_FILE.parent / CALIBRATION_FILE


def random_evidence(rng: random.Random) -> dict:
    return {'log_span': math.log(rng.uniform(1e-6, 1)), 'log_window': math.log(rng.uniform(1e-4, 1)),
            'log_prior': -rng.uniform(0, 3), 'log_no_answer_window': math.log(rng.uniform(1e-6, 1)),
            'log_no_answer': math.log(rng.uniform(1e-6, 1)), 'agreement': rng.uniform(0, 1),
            'context_coverage': rng.uniform(0, 1), 'sentence_coverage': rng.uniform(0, 1),
            'title_coverage': rng.uniform(0, 1), 'log_rank': math.log1p(rng.randint(0, 9)),
            'retrieval_cosine': rng.uniform(-0.1, 1), 'log_contexts': math.log1p(rng.randint(1, 10))}


def test_the_shipped_calibration_belongs_to_the_shipped_reader_and_is_monotone_in_the_evidence():
    calibrator = Calibrator.load(SHIPPED_CALIBRATION)
    assert calibrator.reader_sha256 == expected_sha256(SHIPPED_READER_FILE)
    assert 0.05 < calibrator.threshold < 0.95 and calibrator.report['ece'] < 0.1  # the target: make bench-abstain
    rng = random.Random(3)
    for _ in range(200):
        evidence = random_evidence(rng)
        p = calibrator.probability(evidence)
        assert 0.0 < p < 1.0
        for name in INCREASING:  # more evidence for an answer never makes it less likely to be right
            stronger = dict(evidence, **{name: evidence[name] + rng.uniform(0.01, 1.0)})
            assert calibrator.probability(stronger) >= p - 1e-12, name
    # evidence that is not known (a context that did not come from the index: no cosine) counts as average
    evidence = random_evidence(rng)
    unknown = {k: v for k, v in evidence.items() if k != 'retrieval_cosine'}
    average = dict(evidence, retrieval_cosine=calibrator.mean[calibrator.features.index('retrieval_cosine')])
    assert calibrator.probability(unknown) == pytest.approx(calibrator.probability(average))


def test_fit_drops_an_increasing_feature_with_a_negative_weight_and_picks_the_threshold():
    rng = random.Random(0)
    rows, labels = [], []
    for _ in range(600):
        row = random_evidence(rng)
        right = rng.random() < 1 / (1 + math.exp(-(2 * row['agreement'] - 1 + row['log_window'])))
        row['context_coverage'] = 1.0 - row['agreement'] + rng.uniform(-0.05, 0.05)  # anti-correlated: noise
        rows.append(row)
        labels.append(right)
    calibrator = Calibrator.fit(rows, labels)
    assert 'context_coverage' not in calibrator.features and 'agreement' in calibrator.features
    weights = dict(zip(calibrator.features, calibrator.coef))
    assert all(weights[n] >= 0 for n in INCREASING if n in weights)
    probabilities = [calibrator.probability(r) for r in rows]
    assert calibrator.threshold == best_threshold(probabilities, labels)
    assert expected_calibration_error(probabilities, labels) < 0.08  # a logistic fit of a logistic truth
    with pytest.raises(ValueError, match='both right and wrong'):
        Calibrator.fit(rows[:10], [True] * 10)


def test_reliability_bins_and_ece():
    bins = reliability_bins([0.05, 0.15, 0.15, 0.95], [False, True, False, True])
    assert [b['count'] for b in bins] == [1, 2, 1] and bins[1]['right'] == 0.5
    assert expected_calibration_error([0.95, 0.95], [True, False]) == pytest.approx(0.45)
    with pytest.raises(ValueError):
        expected_calibration_error([], [])


def test_files_round_trip_and_a_bad_one_is_named(tmp_path):
    calibrator = Calibrator.load(SHIPPED_CALIBRATION)
    path = calibrator.save(tmp_path / 'model' / CALIBRATION_FILE)
    again = Calibrator.load(path)
    evidence = random_evidence(random.Random(1))
    assert again.probability(evidence) == calibrator.probability(evidence)
    assert set(again.features) <= set(FEATURES)
    assert calibration_for(tmp_path / 'model').threshold == calibrator.threshold  # a reader directory's own
    assert calibration_for(tmp_path) is None  # neither its own nor the shipped reader
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'coef': [1.0], 'features': ['shoe_size']}))
    with pytest.raises(ValueError, match='bad.json: not a reader calibration file'):
        Calibrator.load(bad)


def test_a_calibrated_reader_says_no_answer_below_its_threshold():
    """The mechanics with the packaged base model (an untrained span head) and a one-feature calibrator:
    p = sigmoid(log_span) <= 0.5, so a threshold of 0.6 never trusts an answer and 0 always does."""
    import torch

    from covidqa.reader.reader import ExtractiveReader
    from covidqa.reader.runners import TorchQARunner

    with torch.random.fork_rng():
        torch.manual_seed(0)
        runner = TorchQARunner('base')
    calibrator = Calibrator(coef=[1.0], intercept=0.0, mean=[0.0], scale=[1.0], threshold=0.6, features=('log_span',))
    reader = ExtractiveReader('base', runner=runner, calibrator=calibrator, max_seq_length=64, doc_stride=16)
    contexts = ['Bats are the most likely natural reservoir of the virus.', 'Masks reduce the spread of droplets.']
    (answers,) = reader.read(['Where does the virus come from?'], [contexts], top_k=2).answers
    assert answers[0].is_no_answer and answers[0].answer == '' and len(answers) == 3
    trusted = answers[1:]
    assert all(0 < a.score <= 0.5 and a.answer for a in trusted)
    assert answers[0].score == pytest.approx(1 - trusted[0].score)
    assert all(a.evidence and set(calibrator.features) <= set(a.evidence) for a in trusted)
    (always,) = reader.read(['Where does the virus come from?'], [contexts], top_k=2, confidence_threshold=0).answers
    assert [(a.answer, a.score) for a in always] == [(a.answer, a.score) for a in trusted]
    assert ExtractiveReader('base', runner=runner).calibrator is None  # a runner of its own: raw span scores
