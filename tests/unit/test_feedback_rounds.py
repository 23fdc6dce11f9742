"""Feedback training rounds (covidqa.feedback.rounds) on a real label store with real (one-epoch) training."""
import pytest

from covidqa.embedding.versions import ModelVersions
from covidqa.feedback.rounds import FeedbackRounds, RoundsError
from covidqa.feedback.store import FeedbackStore

pytestmark = pytest.mark.slow  # trains models or exports ONNX graphs: left out by make test-fast

SHOWN = [{'id': 'd0', 'text': 'Can pets catch the cold?'}, {'id': 'd1', 'text': 'Is there a vaccine?'},
         {'id': 'd2', 'text': 'Should I wear a mask outside?'}]


def label(store, i):
    store.record_search(f'q{i}', f'question {i} about covid', SHOWN, model_version=0)
    store.add_feedback(f'q{i}', {f'd{i % 3}': 'accepted', f'd{(i + 1) % 3}': 'rejected'})


def make(tmp_path, **kwargs):
    config = dict(train_every=4, epochs=1, batch_size=4, num_threads=2)
    config.update(kwargs)
    return FeedbackRounds(FeedbackStore(tmp_path / 'feedback'), ModelVersions(tmp_path / 'embedder'), **config)


def test_refuses_bad_configuration_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"parameter 'loss' must be one of \('cosine', 'mnr'\), got 'triplet'"):
        make(tmp_path, loss='triplet')
    with pytest.raises(ValueError, match='train_every must be a positive integer'):
        make(tmp_path, train_every=0)
    with pytest.raises(ValueError, match='init must be one of'):
        make(tmp_path, init='random')


def test_rounds_start_after_train_every_labels_and_survive_a_restart(tmp_path):
    rounds = make(tmp_path)
    try:
        with pytest.raises(RoundsError, match='nothing to train on yet'):
            rounds.request('now')
        for i in range(3):  # 6 labels (2 per query) but the check runs after each query: round after the 2nd
            label(rounds.store, i)
            scheduled = rounds.labels_added()
            assert scheduled == (i == 1), (i, rounds.status())
        assert rounds.busy()
        generation = rounds.request('explicit')  # coalesced with the pending/running round's successor
        assert rounds.wait_for(generation, timeout=300)
        status = rounds.status()
        assert status['labels_since_training'] == 0 and status['training'] == 'idle', status
        assert 1 <= status['round'] <= 2
        assert status['target_version'] == status['last_version'] == max(status['versions']) >= 1
        assert status['active_version'] == 0  # the indexer moves ACTIVE
        trained = status['target_version']
        with pytest.raises(RoundsError, match=r'version 99 does not exist; available versions: \[0, 1'):
            rounds.rollback(99)
        assert rounds.rollback(0) == trained and rounds.status()['target_version'] == 0
    finally:
        rounds.close()
    assert rounds.closed
    again = make(tmp_path)  # every label is trained on: no new round, the rollback stays
    try:
        status = again.status()
        assert status['labels_since_training'] == 0 and not again.busy()
        assert status['target_version'] == 0 and (status['positive'], status['negative']) == (3, 3)
    finally:
        again.close()
