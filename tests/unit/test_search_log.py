"""The search log the gateway writes from /search replies: record extraction, the result-handler hook, tailing."""
import os
from types import SimpleNamespace

import pytest
from jina.proto import jina_pb2
from jina.types.request.data import DataRequest

from covidqa.docs import DocList, MatchDoc, QADoc
from covidqa.feedback.search_log import SearchLog, search_records_of
from covidqa.runtime.jsonl_log import append_lines
from executors.gateway.recording import log_searches


def queries():
    return DocList[QADoc]([
        QADoc(id='q1', text='Can my dog get it?', model_version=2,
              matches=DocList[MatchDoc]([MatchDoc(id=f'd{i}', text=f'entry {i}', answer='long answer', score=0.5)
                                         for i in range(3)])),
        QADoc(id='q2', text='no matches'),
        QADoc(id='q3', text='version unset', matches=DocList[MatchDoc]([MatchDoc(id='d9', text='')])),
    ])


def reply(endpoint='/search', status=jina_pb2.StatusProto.SUCCESS):
    """A reply as the gateway's result handler gets it: a DataRequest parsed from the bytes of the last hop."""
    request = DataRequest()
    request.header.exec_endpoint = endpoint
    request.data.docs = queries()
    request.header.status.code = status
    return DataRequest(request.proto_with_data.SerializeToString())


def test_records_come_straight_from_the_protobuf():
    records = search_records_of(queries().to_protobuf())
    assert [r['query_id'] for r in records] == ['q1', 'q3']  # a query without matches shows nothing
    assert records[0]['query'] == 'Can my dog get it?' and records[0]['model_version'] == 2
    assert records[0]['matches'] == [{'id': f'd{i}', 'text': f'entry {i}'} for i in range(3)]
    assert records[1]['model_version'] is None and records[1]['matches'] == [{'id': 'd9', 'text': ''}]


def gateway_handler(inner=lambda result: result):
    return SimpleNamespace(streamer=SimpleNamespace(_streamer=SimpleNamespace(_result_handler=inner)))


def test_the_gateway_hook_logs_successful_searches_once_and_never_fails_a_reply(tmp_path):
    log = SearchLog(tmp_path / 'searches.jsonl', writer=True)
    handler = gateway_handler()
    log_searches(handler, log)
    log_searches(handler, log)  # the gRPC and HTTP servers share the streamer: wrapped once
    handle = handler.streamer._streamer._result_handler
    reader = SearchLog(log.path)
    ok = reply()
    assert handle(ok) is ok
    assert [r['query_id'] for r in reader.read_new()] == ['q1', 'q3']
    for refused in (reply(status=jina_pb2.StatusProto.ERROR), reply(endpoint='/answer')):
        handle(refused)
    assert reader.read_new() == []  # failed searches and other endpoints are not logged
    broken = SearchLog(tmp_path / 'missing-dir' / 'searches.jsonl', writer=True)
    os.rmdir(broken.path.parent)  # every append now fails
    handler = gateway_handler()
    log_searches(handler, broken)
    again = reply()
    assert handler.streamer._streamer._result_handler(again) is again  # the search is still answered


def test_a_changed_or_replaced_log_is_read_right(tmp_path):
    path = tmp_path / 'searches.jsonl'
    writer = SearchLog(path, writer=True)
    reader = SearchLog(path)
    writer.append_all(search_records_of(queries().to_protobuf()))
    assert len(reader.read_new()) == 2
    path.unlink()  # replaced by a longer file: read from its start, not from the old position
    append_lines(path, [{'query_id': f'n{i}', 'matches': []} for i in range(50)], durable=False)
    assert [r['query_id'] for r in reader.read_new()] == [f'n{i}' for i in range(50)]
    append_lines(path, [{'query_id': 'big', 'pad': 'x' * 5000}], durable=False)
    assert [r['query_id'] for r in reader.read_new(max_bytes=100)] == ['big']  # a line longer than a chunk


def test_a_search_made_again_with_the_same_id_is_checked_against_its_latest_matches(tmp_path):
    from covidqa.feedback.store import FeedbackError, FeedbackStore

    store = FeedbackStore(tmp_path, writes_searches=False)
    writer = SearchLog(store.searches_path, writer=True)
    writer.append_all(search_records_of(queries().to_protobuf()))
    assert store.has_search('q1')
    second = queries()[:1]
    second[0].matches = DocList[MatchDoc]([MatchDoc(id='other', text='another entry')])
    writer.append_all(search_records_of(second.to_protobuf()))
    assert store.add_feedback('q1', {'other': 'accepted'}) == {'accepted': 1, 'rejected': 0}
    with pytest.raises(FeedbackError, match='unknown document'):
        store.add_feedback('q1', {'d0': 'accepted'})


def ids(records):
    return [r['query_id'] for r in records]


def drain(reader):
    got = []
    while True:
        records = reader.read_new(max_bytes=300)
        if not records:
            return got
        got.extend(records)


def test_the_log_rotates_and_a_reader_that_keeps_up_misses_nothing(tmp_path):
    import random

    path = tmp_path / 'searches.jsonl'
    writer = SearchLog(path, writer=True, max_bytes=2000)
    reader = SearchLog(path)
    rng = random.Random(0)
    written, read = [], []
    for n in range(400):
        group = [{'query_id': f'q{n}-{k}', 'matches': [{'id': 'd', 'text': 'x' * rng.randrange(60)}]}
                 for k in range(rng.randrange(1, 4))]
        writer.append_all(group)
        written.extend(ids(group))
        # two files at most (right after a rotation, only the previous one until the next append)
        assert {p.name for p in tmp_path.iterdir()} <= {'searches.jsonl', 'searches.jsonl.1'}
        assert not path.exists() or path.stat().st_size < 2000
        if rng.random() < 0.3:  # a reader that reads at least once a rotation, at any point of it
            read.extend(ids(drain(reader)))
    read.extend(ids(drain(reader)))
    assert read == written  # every search once, in order, across ~60 rotations
    assert (tmp_path / 'searches.jsonl.1').stat().st_size < 3000


def test_a_reader_that_falls_behind_or_starts_late_reads_the_newest_searches(tmp_path):
    path = tmp_path / 'searches.jsonl'
    writer = SearchLog(path, writer=True, max_bytes=1000)
    behind = SearchLog(path)
    record = lambda n: {'query_id': f'q{n}', 'matches': [{'id': 'd', 'text': 'y' * 40}]}  # noqa: E731
    writer.append_all([record(0)])
    assert ids(drain(behind)) == ['q0']
    for n in range(1, 100):  # ~8 rotations without a read
        writer.append_all([record(n)])
    late = SearchLog(path)  # a reader that starts now: the previous file, then the current one
    newest = ids(drain(late))
    assert newest == [f'q{n}' for n in range(100 - len(newest), 100)] and len(newest) > 10
    # what was left of the file it had open (renamed, then deleted: still readable), then the two kept files
    caught_up = ids(drain(behind))
    assert caught_up[0] == 'q1' and caught_up[-len(newest):] == newest
    numbers = [int(q[1:]) for q in caught_up]
    assert numbers == sorted(set(numbers)) and len(numbers) < 99  # in order, once each; the files between are lost
    writer.append_all([record(100)])
    assert ids(drain(behind)) == ids(drain(late)) == ['q100']


def test_feedback_finds_a_search_logged_after_the_log_rotated(tmp_path):
    from covidqa.feedback.store import FeedbackStore

    store = FeedbackStore(tmp_path, writes_searches=False)
    writer = SearchLog(store.searches_path, writer=True, max_bytes=1500)
    for n in range(30):
        docs = queries()[:1]
        docs[0].id = f'q{n}'
        writer.append_all(search_records_of(docs.to_protobuf()))
        if n == 5:
            assert store.has_search('q5')
    assert store.searches_path.with_name('searches.jsonl.1').exists()  # it did rotate
    assert store.add_feedback('q29', {'d1': 'accepted'}) == {'accepted': 1, 'rejected': 0}
    assert FeedbackStore(tmp_path, writes_searches=False).has_search('q29')  # after a restart too
