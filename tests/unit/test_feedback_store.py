"""The label store: durable, append-only, validated against what was shown, exportable as a training set."""
import json
import threading

import pytest

from covidqa.feedback.store import (
    FeedbackError,
    FeedbackStore,
    TrainingExample,
    examples_from_rows,
    read_rows,
    write_rows,
)

SHOWN = [{'id': 'd1', 'text': 'Can pets catch the virus?'}, {'id': 'd2', 'text': 'How long does it live on steel?'},
         {'id': 'd3', 'text': 'Is there a vaccine?'}]


@pytest.fixture
def store(tmp_path):
    s = FeedbackStore(tmp_path / 'fb')
    s.record_search('q1', 'Can my dog get COVID?', SHOWN, model_version=0)
    return s


def test_labels_survive_a_restart(store, tmp_path):
    added = store.add_feedback('q1', {'d1': 'accepted', 'd2': 'rejected', 'd3': None})
    assert added == {'accepted': 1, 'rejected': 1}
    reopened = FeedbackStore(tmp_path / 'fb')
    counts = reopened.counts()
    assert (counts['positive'], counts['negative'], counts['queries']) == (1, 1, 1)
    assert reopened.has_search('q1') and reopened.shown('q1')['d2'] == SHOWN[1]['text']
    assert reopened.examples() == [TrainingExample('Can my dog get COVID?', [SHOWN[0]['text']], [SHOWN[1]['text']])]


@pytest.mark.parametrize('query_id, labels, problem', [
    ('never', {'d1': 'accepted'}, 'never searched'),
    ('q1', {'d1': None, 'd2': None}, 'no labels'),
    ('q1', {}, 'no labels'),
    ('q1', {'d9': 'accepted', 'd1': 'rejected'}, "unknown document id(s) ['d9']"),
    ('q1', {'d1': 'good'}, 'invalid label'),
    ('', {'d1': 'accepted'}, 'needs the id'),
])
def test_bad_feedback_is_refused_by_name_and_stores_nothing(store, query_id, labels, problem):
    with pytest.raises(FeedbackError, match=problem.replace('[', r'\[').replace(']', r'\]').replace('(', r'\(')
                       .replace(')', r'\)')):
        store.add_feedback(query_id, labels)
    assert store.counts()['events'] == 0
    assert not store.labels_path.exists() or store.labels_path.read_text() == ''


def test_latest_label_of_a_pair_wins(store):
    store.add_feedback('q1', {'d1': 'accepted'})
    store.add_feedback('q1', {'d1': 'rejected'})
    counts = store.counts()
    assert (counts['positive'], counts['negative'], counts['events']) == (0, 1, 2)


def test_a_torn_last_line_is_dropped_and_appending_goes_on(store, tmp_path):
    store.add_feedback('q1', {'d1': 'accepted'})
    with open(store.labels_path, 'ab') as f:  # a crash in the middle of a write
        f.write(b'{"query_id": "q1", "labels": [{"id": "d2", "te')
    reopened = FeedbackStore(tmp_path / 'fb')
    assert reopened.counts()['events'] == 1
    reopened.add_feedback('q1', {'d3': 'rejected'})
    lines = reopened.labels_path.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    assert FeedbackStore(tmp_path / 'fb').counts()['negative'] == 1


def test_export_round_trips_as_csv_and_jsonl(store, tmp_path):
    store.record_search('q2', 'Is there a vaccine yet?', SHOWN)
    store.add_feedback('q1', {'d1': 'accepted', 'd2': 'rejected'})
    store.add_feedback('q2', {'d3': 'accepted'})
    for name in ('train.csv', 'train.jsonl'):
        assert store.export(tmp_path / name) == 3
        rows = read_rows(tmp_path / name)
        assert [r['label'] for r in rows] == ['accepted', 'rejected', 'accepted']
        assert examples_from_rows(rows) == store.examples()
    with pytest.raises(ValueError, match='unknown format'):
        store.export(tmp_path / 'train.txt')


def test_examples_accept_numeric_labels_and_refuse_unknown_ones(tmp_path):
    rows = [{'query': 'a', 'document': 'x', 'label': 1}, {'query': 'a', 'document': 'y', 'label': -1},
            {'query': 'b', 'document': 'x', 'label': '0'}]
    assert examples_from_rows(rows) == [TrainingExample('a', ['x'], ['y']), TrainingExample('b', [], ['x'])]
    with pytest.raises(ValueError, match="unknown label 'maybe'"):
        examples_from_rows([{'query': 'a', 'document': 'x', 'label': 'maybe'}])
    write_rows([{'query': 'q', 'document': 'd'}], tmp_path / 'bad.csv')
    (tmp_path / 'nolabel.csv').write_text('query,document\nq,d\n')
    with pytest.raises(ValueError, match=r"missing column\(s\) \['label'\]"):
        read_rows(tmp_path / 'nolabel.csv')


def test_concurrent_feedback_loses_nothing(store, tmp_path):
    for i in range(8):
        store.record_search(f'c{i}', f'question {i}', SHOWN)
    errors = []

    def flood(i):
        try:
            for j in range(25):
                store.add_feedback(f'c{i}', {SHOWN[j % 3]['id']: 'accepted' if j % 2 else 'rejected'})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.counts()['events'] == 200
    reopened = FeedbackStore(tmp_path / 'fb')
    assert reopened.counts()['events'] == 200 and reopened.counts()['requests'] == 200
    assert reopened.counts()['queries'] == 8


def test_a_reader_store_follows_the_log_another_process_writes(tmp_path):
    """The Flow's split: the gateway appends to the search log, the finetuner's store only reads it (and looks up
    a search it does not know in the log's newer lines)."""
    from covidqa.feedback.search_log import SearchLog, search_record

    reader = FeedbackStore(tmp_path / 'fb', writes_searches=False)
    writer = SearchLog(reader.searches_path, writer=True)
    writer.append(search_record('early', 'Is there a vaccine?', SHOWN, 1))
    assert reader.has_search('early') and reader.shown('early')['d3'] == SHOWN[2]['text']
    with pytest.raises(FeedbackError, match='never searched'):
        reader.add_feedback('late', {'d1': 'accepted'})
    writer.append(search_record('late', 'Masks?', SHOWN, 1))
    assert reader.add_feedback('late', {'d1': 'accepted'}) == {'accepted': 1, 'rejected': 0}
    assert reader.counts()['searches'] == 2
    assert FeedbackStore(tmp_path / 'fb', writes_searches=False).counts()['positive'] == 1  # after a restart


def test_the_log_writer_cuts_a_torn_line_and_readers_skip_an_unfinished_one(tmp_path):
    from covidqa.feedback.search_log import SearchLog, search_record

    path = tmp_path / 'searches.jsonl'
    writer = SearchLog(path, writer=True)
    writer.append(search_record('a', 'first', SHOWN))
    reader = SearchLog(path)
    with open(path, 'ab') as f:
        f.write(b'{"query_id": "torn"')  # a line still being written (or a crash in the middle of one)
    assert [r['query_id'] for r in reader.read_new()] == ['a']
    assert reader.read_new() == []
    SearchLog(path, writer=True)  # the writer restarts: the torn line is cut
    writer.append(search_record('b', 'second', SHOWN))
    assert [r['query_id'] for r in reader.read_new()] == ['b']
