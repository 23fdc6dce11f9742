"""A token for writes and bounded requests, on a real Flow, over HTTP and gRPC (executors/access.py, gateway.py).

The Flow runs with ``COVIDQA_TOKEN`` set and ``COVIDQA_MAX_DOCS=8``: writes without the token are refused with 401
(HTTP) / UNAUTHENTICATED (gRPC), reads stay open, a request of more than 8 documents is refused with 413 /
RESOURCE_EXHAUSTED before any Executor runs, and the Flow keeps serving and keeps what it stored."""
import json
import urllib.error
import urllib.request

import pytest

from client.flowctl import FlowProcess
from covidqa.docs import DocList, QADoc
from covidqa.index.replies import indexer_reply

TOKEN = 'test-token-4f1c'
AUTH = (('authorization', f'Bearer {TOKEN}'),)
FAQ = [QADoc(id=f'faq-{i}', text=text, answer=answer) for i, (text, answer) in enumerate([
    ('How does the virus spread?', 'Mainly through respiratory droplets from coughs and sneezes.'),
    ('What are the symptoms?', 'Fever, dry cough and tiredness are the most common symptoms.'),
    ('Can pets get infected?', 'A few pets have tested positive after close contact with sick people.'),
])]


def http_post(flow, endpoint, body, token=None):
    headers = {'Content-Type': 'application/json'}
    if token:
        headers['Authorization'] = f'Bearer {token}'
    request = urllib.request.Request(f'{flow.http_url}{endpoint}', data=json.dumps(body).encode(), headers=headers,
                                     method='POST')
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b'{}')


@pytest.fixture(scope='module')
def flow(tmp_path_factory):
    with FlowProcess(home=tmp_path_factory.mktemp('access-home'),
                     env={'COVIDQA_TOKEN': TOKEN, 'COVIDQA_MAX_DOCS': '8'}) as running:
        running.client().post('/index', DocList[QADoc](FAQ), metadata=AUTH)
        yield running


def count(flow):
    status, body = http_post(flow, '/count', {'data': [{'text': 'count'}]})
    assert status == 200, body
    return indexer_reply(body['parameters']['__results__'])['count']


def test_http_writes_need_the_token_and_reads_stay_open(flow):
    before = count(flow)  # the fixture's FAQ and what earlier tests added
    new = {'data': [{'id': 'new-1', 'text': 'Is there a vaccine?', 'answer': 'Several vaccines are approved.'}]}
    status, body = http_post(flow, '/index', new)
    assert status == 401 and '/index needs the service token' in body['detail']
    status, body = http_post(flow, '/delete', {'data': [{'id': 'faq-0'}]}, token='wrong')
    assert status == 401 and 'wrong service token' in body['detail']
    assert count(flow) == before  # nothing written, nothing lost
    status, body = http_post(flow, '/search', {'data': [{'text': FAQ[0].text}], 'parameters': {'limit': 1}})
    assert status == 200 and body['data'][0]['matches'][0]['id'] == 'faq-0'
    status, body = http_post(flow, '/index', new, token=TOKEN)
    assert status == 200, body
    assert indexer_reply(body['parameters']['__results__'])['new'] == 1 and count(flow) == before + 1


def test_grpc_writes_need_the_token_in_the_metadata(flow):
    client = flow.client()
    before = count(flow)
    with pytest.raises(Exception) as refused:
        client.post('/delete', DocList[QADoc]([QADoc(id='faq-1')]))
    assert '/delete needs the service token' in str(refused.value)
    assert count(flow) == before  # the refused delete deleted nothing
    found = client.post('/search', DocList[QADoc]([QADoc(text='What are the symptoms?')]), parameters={'limit': 1},
                        return_type=DocList[QADoc])
    assert found[0].matches[0].id == 'faq-1'
    client.post('/index', DocList[QADoc]([QADoc(id='new-2', text='Should I wear a mask?', answer='Yes, indoors.')]),
                metadata=AUTH)
    assert count(flow) == before + 1 and 'new-2' in [m.id for m in client.post(
        '/search', DocList[QADoc]([QADoc(text='Should I wear a mask?')]), parameters={'limit': 1},
        return_type=DocList[QADoc])[0].matches]


def test_a_request_over_the_document_limit_is_refused_at_once_on_both_protocols(flow):
    questions = [{'text': f'question number {i}?'} for i in range(9)]
    status, body = http_post(flow, '/answer', {'data': questions})
    assert status == 413 and 'the request has 9 documents; the limit is 8' in body['detail']
    with pytest.raises(Exception) as refused:
        flow.client().post('/search', DocList[QADoc]([QADoc(text=q['text']) for q in questions]), request_size=9)
    assert 'the limit is 8' in str(refused.value)
    # the same documents in requests of 8 at most are served
    answered = flow.client().post('/search', DocList[QADoc]([QADoc(text=q['text']) for q in questions]),
                                  request_size=5, return_type=DocList[QADoc])
    assert len(answered) == 9


def test_reading_the_services_files_needs_the_token_and_nan_is_a_client_error(flow):
    before = count(flow)
    status, body = http_post(flow, '/qa/eval', {'data': [], 'parameters': {'file': 'dev.csv'}})
    assert status == 401 and '/qa/eval needs the service token' in body['detail']
    status, body = http_post(flow, '/search', {'data': [{'text': 'x'}], 'parameters': {'limit': float('nan')}})
    assert status == 400 and 'NaN or Infinity' in body['detail']
    assert count(flow) == before  # still serving, nothing changed


def test_infinity_in_grpc_parameters_is_invalid_argument_not_a_server_fault(flow):
    import grpc

    before = count(flow)
    for endpoint in ('/search', '/index'):
        with pytest.raises(Exception) as refused:
            flow.client().post(endpoint, DocList[QADoc]([QADoc(id='inf-1', text='x')]),
                               parameters={'max_length': float('inf')}, metadata=AUTH)
        assert 'NaN or Infinity' in str(refused.value)
        assert 'INVALID_ARGUMENT' in str(refused.value) or grpc.StatusCode.INVALID_ARGUMENT.name in repr(refused.value)
    assert count(flow) == before and 'inf-1' not in [m.id for m in flow.client().post(
        '/search', DocList[QADoc]([QADoc(text='x')]), parameters={'limit': 10}, return_type=DocList[QADoc])[0].matches]


def test_a_body_over_the_byte_limit_gets_a_readable_413_not_a_reset(flow):
    from executors.access import MAX_REQUEST_BYTES

    before = count(flow)
    big = {'data': [{'id': 'big-1', 'text': 'x' * (MAX_REQUEST_BYTES + 1024)}]}
    status, body = http_post(flow, '/index', big, token=TOKEN)
    assert status == 413 and 'bytes' in body['detail'], body
    assert count(flow) == before  # refused before anything was stored


def test_grpc_unknown_endpoints_and_unary_calls_are_checked_too(flow):
    client = flow.client()
    with pytest.raises(Exception) as unknown:
        client.post('/searc', DocList[QADoc]([QADoc(text='typo in the endpoint')]), metadata=AUTH)
    assert "unknown endpoint '/searc'" in str(unknown.value)
    with pytest.raises(Exception) as refused:
        client.post('/delete', DocList[QADoc]([QADoc(id='faq-2')]), stream=False)
    assert '/delete needs the service token' in str(refused.value)
    assert 'faq-2' in [m.id for m in client.post('/search', DocList[QADoc]([QADoc(text=FAQ[2].text)]),
                                                 parameters={'limit': 1}, return_type=DocList[QADoc])[0].matches]


def test_the_plain_grpc_stub_searches_writes_with_the_token_and_reports_refusals(flow):
    import grpc

    from client.grpc_stub import ExecutorError, GrpcStub

    before = count(flow)
    stub = GrpcStub(flow.grpc_port)
    try:
        reply = stub.post('/search', DocList[QADoc]([QADoc(text=FAQ[1].text)]), {'limit': 2})
        assert len(reply) == 1 and reply[0].docs[0].matches[0].id == 'faq-1'
        with pytest.raises(grpc.RpcError) as refused:
            stub.post('/delete', DocList[QADoc]([QADoc(id='faq-1')]))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(ExecutorError) as bad:
            stub.post('/search', DocList[QADoc]([QADoc(text='x')]), {'limit': 'ten'}, metadata=AUTH)
        assert bad.value.name == 'BadRequest' and 'limit' in str(bad.value)
        replies = stub.post('/index', DocList[QADoc]([QADoc(id=f'stub-{i}', text=f'stub question {i}?') for i in
                                                      range(3)]), metadata=AUTH, request_size=2)
        assert len(replies) == 2  # two requests of at most 2 documents
        assert count(flow) == before + 3  # the refused delete took nothing away
        assert 'stub-2' in [m.id for m in stub.post('/search', DocList[QADoc]([QADoc(text='stub question 2?')]),
                                                    {'limit': 3})[0].docs[0].matches]
    finally:
        stub.close()


def raw_post(flow, endpoint, body: bytes):
    request = urllib.request.Request(f'{flow.http_url}{endpoint}', data=body,
                                     headers={'Content-Type': 'application/json'}, method='POST')
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b'{}')


@pytest.mark.parametrize('body, message', [
    (b'{"data": ' + b'[' * 50_000 + b']' * 50_000 + b'}', 'nests deeper than 64 levels'),  # Python's parser fails
    (b'{"data": [{"text": "x", "tags": ' + b'[' * 100 + b']' * 100 + b'}]}', 'nests deeper than 64 levels'),
    (b'{"data": [{"text": "x"}', 'the body is not valid JSON'),
    (b'{"data": [{"text": "\xff\xfe"}]}', 'the body is not valid JSON'),
])
def test_unparsable_or_deeply_nested_json_is_a_client_error(flow, body, message):
    before = count(flow)
    for endpoint in ('/search', '/answer'):
        status, reply = raw_post(flow, endpoint, body)
        assert status == 400 and message in reply['detail'] and reply['detail'].startswith(endpoint), reply
    assert count(flow) == before  # still serving, nothing changed
