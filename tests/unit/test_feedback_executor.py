"""The Finetuner Executor without a Flow: validation, background rounds, floods, rollback, save_model, status."""
import threading
import time

import pytest

from covidqa.docs import DocList, MatchDoc, QADoc
from covidqa.feedback.search_log import SearchLog, search_records_of
from covidqa.feedback.store import FeedbackStore, read_rows
from executors._common import BadRequest
from executors.finetuner import Finetuner

DOCS = ['Can pets catch the cold?', 'How long does the virus live on steel?', 'Is there a vaccine?',
        'Should I wear a mask outside?']


def query(qid, text, labels=None):
    labels = labels or {}
    return QADoc(id=qid, text=text, matches=DocList[MatchDoc](
        [MatchDoc(id=f'd{i}', text=t, score=1.0 - i / 10, label=labels.get(f'd{i}')) for i, t in enumerate(DOCS)]))


def wait_until(predicate, timeout=240, what='condition'):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f'timed out waiting for {what}')


@pytest.fixture
def finetuner(tmp_path):
    ex = Finetuner(store_dir=str(tmp_path / 'feedback'), versions_dir=str(tmp_path / 'embedder'), train_every=3,
                   epochs=1, batch_size=4, num_threads=2)
    yield ex
    ex.close()


def searched(ex, n):
    """``n`` queries searched: logged as the Flow's gateway logs a /search reply, where ``ex`` (a Finetuner) reads."""
    docs = DocList[QADoc]([query(f'q{i}', f'question number {i} about covid') for i in range(n)])
    SearchLog(ex.store.searches_path, writer=True).append_all(search_records_of(docs.to_protobuf()))
    return docs


def test_feedback_is_validated_with_a_named_problem(finetuner):
    searched(finetuner, 1)
    cases = [
        (DocList[QADoc](), 'no documents'),
        (DocList[QADoc]([query('nope', 'never searched', {'d0': 'accepted'})]), "id='nope' was never searched"),
        (DocList[QADoc]([query('q0', 'x')]), 'no labels'),
        (DocList[QADoc]([QADoc(id='q0', text='x', matches=DocList[MatchDoc]([MatchDoc(id='zzz', label='accepted')]))]),
         "unknown document id(s) ['zzz']"),
        (DocList[QADoc]([query('q0', 'x', {'d0': 'great'})]), 'invalid label'),
    ]
    for docs, problem in cases:
        with pytest.raises(BadRequest) as error:
            finetuner.feedback(docs=docs, parameters={})
        assert problem in str(error.value)
    with pytest.raises(BadRequest, match='unknown parameter'):
        finetuner.feedback(docs=DocList[QADoc]([query('q0', 'x', {'d0': 'accepted'})]), parameters={'foo': 1})
    assert finetuner.status(docs=DocList[QADoc](), parameters={})['positive'] == 0


@pytest.mark.slow
def test_rounds_floods_rollback_and_save_model(finetuner, tmp_path):
    searched(finetuner, 13)
    status = lambda: finetuner.status(docs=DocList[QADoc](), parameters={'__results__': {}})  # noqa: E731
    # a flood of concurrent feedback: every label is kept durably, the replies do not wait for training, and the
    # rounds (one after every 3 new labels) are coalesced: the last one covers every label
    errors, replies = [], []

    def send(i):
        try:
            labels = {f'd{i % 4}': 'accepted', f'd{(i + 1) % 4}': 'rejected'}
            replies.append(finetuner.feedback(docs=DocList[QADoc]([query(f'q{i}', 'x', labels)]), parameters={}))
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(replies) == 12
    assert any(r['training_scheduled'] for r in replies)
    assert status()['positive'] == 12 and status()['negative'] == 12
    assert FeedbackStore(tmp_path / 'feedback').counts()['events'] == 24  # durable before the replies
    wait_until(lambda: status()['labels_since_training'] == 0 and status()['training'] == 'idle'
               and not status()['round_pending'], what='rounds to catch up with the flood')
    done = status()
    assert 1 <= done['round'] <= 3, done  # coalesced, not one round per request (12) or per 3 labels (8)
    assert done['target_version'] == done['last_version'] == max(done['versions']) >= 1
    assert done['last_loss'] > 0 and done['last_error'] is None
    assert done['active_version'] == 0  # the indexer moves ACTIVE, not the finetuner

    # rollback to the base model; unknown versions are refused by name
    rolled = finetuner.rollback(docs=DocList[QADoc](), parameters={'version': 0.0})
    assert rolled['target_version'] == 0 and rolled['rolled_back_from'] == done['target_version']
    with pytest.raises(BadRequest, match=r'version 99 does not exist; available versions: \[0, 1'):
        finetuner.rollback(docs=DocList[QADoc](), parameters={'version': 99})
    with pytest.raises(BadRequest, match="'version' is required"):
        finetuner.rollback(docs=DocList[QADoc](), parameters={})

    # save model: new labels are trained into a new version before it answers; the labels are exported
    finetuner.feedback(docs=DocList[QADoc]([query('q12', 'x', {'d2': 'accepted'})]), parameters={})
    saved = finetuner.save_model(docs=DocList[QADoc](), parameters={'wait': True})
    assert saved['finished'] is True and saved['saved_version'] == saved['target_version'] == max(saved['versions'])
    assert saved['saved_version'] > done['target_version']
    assert len(read_rows(saved['training_set'])) == saved['training_set_rows'] == 25

    # a restart keeps every label and does not retrain what is already trained
    finetuner.close()
    again = Finetuner(store_dir=str(tmp_path / 'feedback'), versions_dir=str(tmp_path / 'embedder'), train_every=3,
                      epochs=1, batch_size=4, num_threads=2)
    try:
        restarted = again.status(docs=DocList[QADoc](), parameters={})
        assert (restarted['positive'], restarted['negative']) == (13, 12)
        assert restarted['labels_since_training'] == 0 and not restarted['round_pending']
        assert restarted['target_version'] == saved['saved_version']
    finally:
        again.close()
