"""The search log the gateway writes from /search replies: record extraction, the result-handler hook, tailing."""
import os
from types import SimpleNamespace

import pytest
from jina.proto import jina_pb2
from jina.types.request.data import DataRequest

from covidqa.docs import DocList, MatchDoc, QADoc
from covidqa.jsonl_log import append_lines
from covidqa.search_log import SearchLog, search_records_of
from executors.gateway import log_searches


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
    from covidqa.feedback import FeedbackError, FeedbackStore

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
