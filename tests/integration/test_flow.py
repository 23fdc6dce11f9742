"""The whole Flow, started with `jina flow --uses flow.yml` on 127.0.0.1 ports, queried over gRPC and HTTP."""
import csv
import json
import shutil
import string
import subprocess
import sys
import urllib.error
import urllib.request
import zlib

import pytest
from jina.excepts import BadServer

from client.__main__ import legible_score
from client.flowctl import REPO, FlowProcess
from covidqa.data.documents import load_documents
from covidqa.docs import AnswerReply, AnswerSpan, DocList, QADoc
from covidqa.index.replies import indexer_reply
from tests.helpers import shared_fraction
from toydata import generate_qa


def http_post(flow, endpoint, body, timeout=120):
    request = urllib.request.Request(f'{flow.http_url}{endpoint}', data=json.dumps(body).encode(),
                                     headers={'Content-Type': 'application/json'}, method='POST')
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b'{}')


def error_text(error) -> str:
    """The description the Flow sent back with a failed request (what a client shows the user)."""
    header = error.value.args[0]
    return header.status.description + ' ' + ' '.join(header.status.exception.args)


def results(response):
    return response[0].parameters['__results__']


@pytest.fixture(scope='module')
def faq_docs(faq_csv):
    return generate_qa(faq_csv)


@pytest.fixture(scope='module')
def flow(tmp_path_factory, faq_docs):
    # a small search log (64 KB, ~150 searches): the gateway rotates it during these tests
    with FlowProcess(home=tmp_path_factory.mktemp('flow-home'), env={'COVIDQA_SEARCH_LOG_BYTES': str(64 << 10)}
                     ) as running:
        running.client().post('/index', faq_docs, request_size=64)
        # the state this fixture guarantees, read before any test runs (tests write documents of their own)
        running.indexed_count = count(running)
        yield running


def count(flow) -> int:
    """The indexer's document count (/count over gRPC)."""
    return indexer_reply(results(flow.client().post('/count', DocList[QADoc](), return_responses=True)))['count']


def search(flow, texts, limit=3, protocol='grpc'):
    """Results in the order of `texts`: the requests of 64 finish in any order, and jina returns them as they come.

    Twice (sessions 6 and 7) a search right after a refused request hung for good inside this process's jina gRPC
    client, while the Flow kept serving (a fresh client in another process was answered in 0.1 s). So the call has
    a gRPC deadline, and one retry when it passes (jina raises ConnectionError for it). A third time (session 14)
    the retry on a new jina client failed at once with UNAVAILABLE 'too many pings': gRPC shares one connection
    between channels with the same options in a process, and the hung call's connection had been closed. The
    retry now goes over a connection of its own (client.grpc_stub, other channel options)."""
    from client.grpc_stub import GrpcStub

    docs = DocList[QADoc]([QADoc(text=t) for t in texts])
    kwargs = dict(parameters={'limit': limit}, return_type=DocList[QADoc], request_size=64, results_in_order=True)
    if protocol != 'grpc':
        return flow.client(protocol).post('/search', docs, **kwargs)
    try:
        return flow.client(protocol).post('/search', docs, timeout=120, **kwargs)
    except ConnectionError:
        stub = GrpcStub(flow.grpc_port)
        try:
            replies = stub.post('/search', docs, {'limit': limit}, timeout=120, request_size=64)
        finally:
            stub.close()
        return DocList[QADoc]([doc for reply in replies for doc in reply.docs])


def test_search_ranks_by_the_retrieval_parameter_over_grpc_and_http(flow, faq_docs):
    """``retrieval``: dense (cosine), lexical (BM25 over text and answer) or hybrid (fused, in [0, 1])."""
    from client.grpc_stub import GrpcStub

    stub = GrpcStub(flow.grpc_port)
    try:
        by = {r: stub.post('/search', DocList[QADoc]([QADoc(text='How long is the incubation period?')]),
                           {'limit': 5, 'retrieval': r})[0].docs[0].matches for r in ('dense', 'lexical', 'hybrid')}
    finally:
        stub.close()
    assert all(len(matches) == 5 for matches in by.values())
    for m in by['lexical']:  # every BM25 match shares a (stemmed) word with the question
        words = f'{m.text} {m.answer or ""}'.lower()
        assert 'incubat' in words or 'period' in words or 'long' in words, m.text
    assert by['lexical'][0].id in [m.id for m in by['hybrid']] and by['dense'][0].id in [m.id for m in by['hybrid']]
    scores = [m.score for m in by['hybrid']]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores) and scores[0] > 0.5
    status, body = http_post(flow, '/search', {'data': [{'text': 'incubation'}],
                                               'parameters': {'retrieval': 'hybrid', 'limit': 3}})
    assert status == 200 and len(body['data'][0]['matches']) == 3
    status, body = http_post(flow, '/search', {'data': [{'text': 'incubation'}], 'parameters': {'retrieval': 'bm25'}})
    assert status == 400 and "parameter 'retrieval' must be one of" in json.dumps(body)


def test_answer_retrieves_hybrid_by_default_and_search_dense(flow, faq_docs):
    """``/answer`` ranks its contexts ``hybrid`` (indexer ``answer_retrieval``), ``/search`` ``dense`` (``retrieval``);
    the request's ``retrieval`` overrides either."""
    question = 'Can the virus be transmitted through mosquito bites?'

    def ranked(endpoint, **parameters):
        extra = {'return_matches': True} if endpoint == '/answer' else {}
        docs = flow.client().post(endpoint, DocList[QADoc]([QADoc(text=question)]), return_type=DocList[QADoc],
                                  parameters={'limit': 5, **parameters, **extra})
        return [(m.id, round(m.score, 5)) for m in docs[0].matches]

    hybrid, dense = ranked('/search', retrieval='hybrid'), ranked('/search')
    assert hybrid != dense  # fused scores are not cosines: the two rankings tell apart
    assert ranked('/answer') == hybrid
    assert ranked('/answer', retrieval='dense') == dense == ranked('/search', retrieval='dense')


def test_count_after_index(flow, faq_docs):
    """Right after the fixture indexed the FAQ, /count gave its distinct ids (the FAQ repeats a few questions: one
    document each); indexing documents again by their ids adds none (add or replace), whatever other tests left."""
    assert flow.indexed_count == len(set(faq_docs.id)) < len(faq_docs)
    before = count(flow)
    again = results(flow.client().post('/index', faq_docs[:8], return_responses=True))
    assert indexer_reply(again)['new'] == 0 and indexer_reply(again)['count'] == before == count(flow)


def test_faq_questions_find_their_own_entry_in_top3(flow, faq_docs):
    found = search(flow, faq_docs.text, limit=3)
    assert found.text == faq_docs.text  # in input order across the 4 requests
    misses = [q.text for q, doc in zip(found, faq_docs)
              if doc.id not in [m.id for m in q.matches]]
    assert not misses, f'{len(misses)} FAQ questions missed their own entry: {misses[:3]}'
    scores = [m.score for m in found[0].matches]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3


def test_reworded_faq_questions_mostly_find_their_entry(flow, faq_docs):
    """Lowercased, punctuation-free questions: the CLS embedding should still rank the entry in the top 3."""
    sample = faq_docs[:60]
    reworded = [q.lower().translate(str.maketrans('', '', string.punctuation)) for q in sample.text]
    found = search(flow, reworded, limit=3)
    hits = sum(doc.id in [m.id for m in q.matches] for q, doc in zip(found, sample))
    assert hits / len(sample) >= 0.9, hits


def test_answer_spans_point_into_their_context(flow):
    questions = ['How does the virus spread?', 'What are the symptoms of COVID-19?', 'Should I wear a mask?']
    answered = flow.client().post('/answer', DocList[QADoc]([QADoc(text=q) for q in questions]),
                                  parameters={'limit': 3, 'top_k': 3, 'lexical_weight': 20, 'return_matches': True},
                                  return_type=DocList[QADoc])
    for query in answered:
        assert query.matches and query.answers
        match_ids = {m.id for m in query.matches}
        spans = [a for a in query.answers if not a.no_answer]  # "no answer", when it comes, comes first
        assert spans == list(query.answers)[len(query.answers) - len(spans):]
        assert all(0 < a.score < 1 for a in spans)
        best_of = {}  # contexts come best first (by their most likely right answer)
        for a in spans:
            best_of[a.context_id] = max(best_of.get(a.context_id, 0), a.score)
        order = list(dict.fromkeys(a.context_id for a in spans))
        assert [best_of[c] for c in order] == sorted(best_of.values(), reverse=True)
        for span in spans:
            assert span.context_id in match_ids
            assert span.context[span.start:span.end] == span.answer
            source = next(m for m in query.matches if m.id == span.context_id)
            assert span.title == source.text  # the FAQ question whose answer was read
        for i, a in enumerate(spans):  # top_k answers are distinct (overlap_threshold 0.01)
            for b in spans[:i]:
                assert a.context_id != b.context_id or shared_fraction(a, b) <= 0.01, (a, b)
    # the lexical sentence prior only discounts: without it (lexical_weight 0) no span is less likely right
    plain = flow.client().post('/answer', DocList[QADoc]([QADoc(text=q) for q in questions]),
                               parameters={'limit': 3, 'top_k': 3, 'lexical_weight': 0}, return_type=DocList[QADoc])
    for query, unweighted in zip(answered, plain):
        raw = {(a.context_id, a.start, a.end): a.score for a in unweighted.answers}
        for span in query.answers:
            key = (span.context_id, span.start, span.end)
            if span.answer and key in raw:
                assert span.score <= raw[key] + 1e-6


def test_http_search_and_answer(flow, faq_docs):
    status, body = http_post(flow, '/search', {'data': [{'text': faq_docs[5].text}], 'parameters': {'limit': 2}})
    assert status == 200
    assert body['data'][0]['matches'][0]['id'] == faq_docs[5].id
    status, body = http_post(flow, '/answer', {'data': [{'text': 'How long does the virus survive on surfaces?'}],
                                               'parameters': {'top_k': 2}})
    assert status == 200
    for span in body['data'][0]['answers']:
        if span['answer']:
            assert span['context'][span['start']:span['end']] == span['answer']
    with urllib.request.urlopen(f'{flow.http_url}/openapi.json', timeout=30) as response:
        spec = json.loads(response.read())
    assert {'/search', '/answer', '/index'} <= set(spec['paths'])


QUESTIONS_WITHOUT_AN_ANSWER = ['What is the capital of France?', 'Who won the 2018 football world cup?',
                               'asdf qwer zxcv', 'a' * 28]


def test_no_answer_is_explicit_and_confidence_threshold_decides(flow):
    """The shipped reader's calibrated confidence: a question the FAQ does not cover gets "no answer" (its
    probability as the score) with the untrusted best candidate under it; an answer is never an empty string."""
    client = flow.client()
    ask = lambda question, **parameters: client.post(  # noqa: E731
        '/answer', DocList[QADoc]([QADoc(text=question)]), parameters=parameters,
        return_type=DocList[AnswerReply])[0].answers
    france = ask('What is the capital of France?')
    assert france[0].no_answer and france[0].answer is None and france[0].start == france[0].end == -1
    assert france[0].context_id is None and 0.5 < france[0].score <= 1.0
    assert len(france) == 2 and france[1].answer and 1 - france[1].score == pytest.approx(france[0].score)
    forced = ask('What is the capital of France?', confidence_threshold=0)  # always answer
    assert not forced[0].no_answer and (forced[0].answer, forced[0].score) == (france[1].answer, france[1].score)
    assert ask('How does the virus spread?', confidence_threshold=1)[0].no_answer  # never trust
    for question in QUESTIONS_WITHOUT_AN_ANSWER + ['How does the virus spread?', 'Should I wear a mask?']:
        status, body = http_post(flow, '/answer', {'data': [{'text': question}], 'parameters': {'top_k': 3}})
        assert status == 200
        for span in body['data'][0]['answers']:
            assert span['no_answer'] == (span['answer'] is None), span
            assert span['answer'] is None or span['answer'].strip(), span  # never an empty string


TRAINING_FIELDS = ('wrong_answer', 'embedding', 'input_ids', 'label')


def test_replies_are_lean_over_http_and_grpc(flow, faq_docs):
    """/answer returns the answers with their sources, matches only with return_matches; neither /answer nor
    /search returns vectors, token ids or training fields (the FAQ's documents carry a wrong_answer)."""
    assert faq_docs[5].wrong_answer
    status, body = http_post(flow, '/answer', {'data': [{'text': faq_docs[5].text}]})
    assert status == 200
    (reply,) = body['data']
    assert set(reply) <= {'id', 'text', 'model_version', 'answers', 'matches'} and reply['matches'] == []
    assert not any(field in json.dumps(body) for field in TRAINING_FIELDS)
    span = next(a for a in reply['answers'] if not a['no_answer'])
    assert (span['context_id'], span['title']) == (faq_docs[5].id, faq_docs[5].text)
    status, body = http_post(flow, '/answer', {'data': [{'text': faq_docs[5].text}],
                                               'parameters': {'return_matches': True, 'limit': 3}})
    assert status == 200 and len(body['data'][0]['matches']) == 3
    assert not any(field in json.dumps(body) for field in TRAINING_FIELDS)
    status, body = http_post(flow, '/search', {'data': [{'text': faq_docs[5].text}], 'parameters': {'limit': 3}})
    assert status == 200 and body['data'][0]['matches'][0]['id'] == faq_docs[5].id
    assert not any(field in json.dumps(body) for field in TRAINING_FIELDS)
    for parameters in ({}, {'return_matches': True}):  # gRPC, read into the Flow's full document type
        (doc,) = flow.client().post('/answer', DocList[QADoc]([QADoc(text=faq_docs[5].text)]),
                                    parameters={'limit': 3, **parameters}, return_type=DocList[QADoc])
        assert len(doc.matches) == (3 if parameters else 0) and doc.embedding is None and doc.input_ids is None
        assert all(m.wrong_answer is None and m.cosine is not None for m in doc.matches)
    (found,) = search(flow, [faq_docs[5].text])
    assert found.matches[0].id == faq_docs[5].id and found.embedding is None
    assert all(m.wrong_answer is None for m in found.matches)
    with urllib.request.urlopen(f'{flow.http_url}/openapi.json', timeout=30) as response:
        spec = json.loads(response.read())
    schemas = spec['components']['schemas']
    reply_schemas = [name for name, schema in schemas.items() if 'no_answer' in schema.get('properties', {})]
    assert reply_schemas and all('wrong_answer' not in schemas[name]['properties'] for name in reply_schemas)


def test_the_gateway_logs_every_search_before_its_reply_over_both_protocols(flow, faq_docs):
    """What /search showed is in the search log (the gateway writes it from the reply) before the client has the
    reply, over gRPC and HTTP; a refused search is not logged; feedback sent right away finds its search."""
    from client.grpc_stub import GrpcStub
    from covidqa.feedback.search_log import SearchLog

    log = SearchLog(flow.home / 'feedback' / 'searches.jsonl')
    while log.read_new():  # what earlier tests searched
        pass
    stub = GrpcStub(flow.grpc_port)
    queries = DocList[QADoc]([QADoc(id=f'logged-{i}', text=faq_docs[i].text) for i in range(3)])
    reply = stub.post('/search', queries, {'limit': 4})[0].docs
    records = log.read_new()  # read right after the reply: no waiting
    logged = {r['query_id']: r for r in records}
    assert sorted(r['query_id'] for r in records) == ['logged-0', 'logged-1', 'logged-2']  # each once
    for doc in reply:
        assert [m['id'] for m in logged[doc.id]['matches']] == [m.id for m in doc.matches]
        assert [m['text'] for m in logged[doc.id]['matches']] == [m.text for m in doc.matches]
        assert logged[doc.id]['query'] == doc.text and logged[doc.id]['model_version'] == doc.model_version
    status, _ = http_post(flow, '/search', {'data': [{'id': 'refused', 'text': 'x'}], 'parameters': {'limit': -1}})
    assert status == 400
    status, body = http_post(flow, '/search', {'data': [{'id': 'over-http', 'text': faq_docs[7].text}],
                                               'parameters': {'limit': 2}})
    assert status == 200
    assert [r['query_id'] for r in log.read_new()] == ['over-http']  # not the refused one
    shown = body['data'][0]['matches']
    status, body = http_post(flow, '/feedback', {'data': [{'id': 'over-http', 'matches': [
        {'id': shown[0]['id'], 'label': 'accepted'}, {'id': shown[1]['id'], 'label': 'rejected'}]}]})
    assert status == 200, body
    finetuner = next(v for k, v in body['parameters']['__results__'].items() if k.startswith('finetuner'))
    assert finetuner['accepted'] == 1 and finetuner['rejected'] == 1


def test_the_search_log_is_rotated_and_its_readers_follow(flow, faq_docs):
    """Past $COVIDQA_SEARCH_LOG_BYTES the gateway starts a new log file and keeps one previous file; a reader
    that reads between the searches gets each once, and the finetuner finds the newest search for its feedback."""
    from client.grpc_stub import GrpcStub
    from covidqa.feedback.search_log import SearchLog

    path = flow.home / 'feedback' / 'searches.jsonl'
    log = SearchLog(path)
    while log.read_new():
        pass
    stub = GrpcStub(flow.grpc_port)
    sent, logged = [], []
    for batch in range(30):  # 300 searches of 10 matches: ~4 rotations of the 64 KB log
        queries = DocList[QADoc]([QADoc(id=f'rot-{batch}-{i}', text=faq_docs[(batch * 10 + i) % len(faq_docs)].text)
                                  for i in range(10)])
        stub.post('/search', queries, {'limit': 10})
        sent.extend(q.id for q in queries)
        while True:
            records = log.read_new()
            if not records:
                break
            logged.extend(r['query_id'] for r in records)
    assert sorted(logged) == sorted(sent)  # each search once, none lost across the rotations
    files = sorted(p.name for p in path.parent.iterdir() if p.name.startswith('searches'))
    # the current file is created by the first append after a rotation: absent when the last search rotated
    assert files in (['searches.jsonl', 'searches.jsonl.1'], ['searches.jsonl.1'])
    assert not path.exists() or path.stat().st_size < 64 << 10
    assert path.with_name('searches.jsonl.1').stat().st_size < 80 << 10
    newest = stub.post('/search', DocList[QADoc]([QADoc(id='rot-last', text=faq_docs[0].text)]), {'limit': 2})[0]
    shown = newest.docs[0].matches
    status, body = http_post(flow, '/feedback', {'data': [{'id': 'rot-last', 'matches': [
        {'id': shown[0].id, 'label': 'accepted'}, {'id': shown[1].id, 'label': 'rejected'}]}]})
    assert status == 200, body
    stub.close()


def test_update_and_delete(flow):
    client = flow.client()
    before = count(flow)  # what the fixture and earlier tests left
    doc = QADoc(id='extra-1', text='Can my cat catch the coronavirus?', answer='Rarely.', title='Pets',
                parent_id='article-7', offset_start=120, offset_end=153)  # a passage of a longer document
    indexed = indexer_reply(results(client.post('/index', DocList[QADoc]([doc]), return_responses=True)))
    assert (indexed['new'], indexed['count']) == (1, before + 1)
    found = search(flow, [doc.text], limit=1)[0].matches[0]
    assert (found.id, found.title, found.parent_id, found.offset_start, found.offset_end) == \
        ('extra-1', 'Pets', 'article-7', 120, 153)
    client.post('/update', DocList[QADoc]([QADoc(id='extra-1', text=doc.text, answer='Very rarely.')]))
    assert search(flow, [doc.text], limit=1)[0].matches[0].answer == 'Very rarely.'
    assert count(flow) == before + 1  # replaced, not added
    with pytest.raises(BadServer) as error:
        client.post('/update', DocList[QADoc]([QADoc(id='no-such-id', text='x')]))
    assert "unknown document id(s) ['no-such-id']" in error_text(error)
    deleted = results(client.post('/delete', DocList[QADoc]([QADoc(id='extra-1'), QADoc(id='nope')]),
                                  return_responses=True))
    assert indexer_reply(deleted)['deleted'] == ['extra-1'] and indexer_reply(deleted)['missing'] == ['nope']
    assert indexer_reply(deleted)['count'] == before == count(flow)
    assert 'extra-1' not in [m.id for m in search(flow, [doc.text], limit=5)[0].matches]


@pytest.mark.parametrize('docs, parameters, message', [
    ([QADoc(text='')], {}, 'empty text'),
    ([QADoc(text='   ')], {}, 'empty text'),
    ([QADoc(text='x' * 1_000_000)], {}, 'characters; the limit is'),
    ([QADoc(text='How does it spread?')], {'limt': 3}, "unknown parameter(s) ['limt']"),
    ([QADoc(text='How does it spread?')], {'limit': -1}, "'limit' must be an integer"),
    ([QADoc(text='How does it spread?')], {'limit': 'ten'}, "'limit' must be an integer"),
])
def test_bad_grpc_input_is_refused_clearly_and_the_flow_keeps_serving(flow, faq_docs, docs, parameters, message):
    with pytest.raises(BadServer) as error:
        flow.client().post('/search', DocList[QADoc](docs), parameters=parameters)
    assert message in error_text(error)
    assert error.value.args[0].status.exception.name == 'BadRequest'  # a client error, told apart from a fault
    assert search(flow, [faq_docs[0].text], limit=1)[0].matches[0].id == faq_docs[0].id


# 422 when FastAPI's request model refuses the body; 400 for what an Executor refuses (executors/gateway/http.py turns
# jina's blanket 500 into 400 for client errors), with the Executor's message.
@pytest.mark.parametrize('body, code, message', [
    ({}, 422, 'data'),                                             # no data at all: the body does not parse
    ({'data': 'not a list'}, 422, 'data'),
    ({'data': []}, 400, 'no documents'),  # was a 500: the tokenizer library failed on an empty list (soak test)
    ({'data': [{'txt': 'typo in the field name'}]}, 400, 'empty text'),  # no text
    ({'data': [{'text': ''}]}, 400, 'empty text'),
    ({'data': [{'text': 'ok'}], 'parameters': {'top_k': 0}}, 400, "parameter 'top_k' must be an integer"),
    ({'data': [{'text': 'ok'}], 'parameters': {'lexical_weight': -1}}, 400, "parameter 'lexical_weight' must be"),
    ({'data': [{'text': 'ok'}], 'parameters': {'overlap_threshold': 2}}, 400, "parameter 'overlap_threshold' must be"),
    ({'data': [{'text': 'ok'}], 'parameters': {'confidence_threshold': 1.5}}, 400,
     "parameter 'confidence_threshold' must be"),
    ({'data': [{'text': 'ok'}], 'parameters': {'return_matches': 'yes'}}, 400, "parameter 'return_matches' must be"),
    ({'data': [{'text': 'ok'}], 'parameters': {'limt': 3}}, 400, "unknown parameter(s) ['limt'] for /answer"),
    # shards' answers are joined by query id: two queries with one id would get each other's matches
    ({'data': [{'id': 'q', 'text': 'a'}, {'id': 'q', 'text': 'b'}]}, 400, "documents 0 and 1 have the same id 'q'"),
])
def test_bad_http_input_is_a_client_error_naming_the_problem_and_the_flow_keeps_serving(flow, faq_docs, body, code,
                                                                                         message):
    status, answer = http_post(flow, '/answer', body)
    assert status == code, answer
    assert message in json.dumps(answer['detail']).replace('\\"', '"'), answer
    status, ok = http_post(flow, '/search', {'data': [{'text': faq_docs[1].text}], 'parameters': {'limit': 1}})
    assert status == 200 and ok['data'][0]['matches'][0]['id'] == faq_docs[1].id


def test_cli_client(flow, faq_docs):
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, '-m', 'client', '--port', str(flow.grpc_port), *args],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    out = run('search', faq_docs[3].text, '-l', '2')
    assert out.returncode == 0, out.stderr
    assert faq_docs[3].text in out.stdout.splitlines()[0]
    out = run('ask', 'How does the virus spread?')
    assert out.returncode == 0, out.stderr
    # the CLI shows what /answer gives for its defaults (5 FAQ entries read, 3 answers)
    best = flow.client().post('/answer', DocList[QADoc]([QADoc(text='How does the virus spread?')]),
                              parameters={'limit': 5, 'top_k': 3}, return_type=DocList[QADoc])[0].answers[0]
    expected = (f'1. {best.answer}   [{legible_score(best.score)} likely right]' if not best.no_answer else
                f'no answer in the indexed documents ({legible_score(best.score)} sure)')
    assert out.stdout.splitlines()[0] == expected, out.stdout
    out = run('ask', 'What is the capital of France?')
    assert out.returncode == 0 and out.stdout.startswith('no answer in the indexed documents ('), out.stdout
    out = run('--port', '1', 'count')
    assert out.returncode == 2 and out.stderr.startswith('error: cannot reach the Flow at 127.0.0.1:1')


DOCUMENTS = REPO / 'tests' / 'fixtures' / 'documents'  # one small file of each format, made by hand


def test_documents_of_every_format_are_indexed_answered_reindexed_in_place_and_deleted_whole(flow, faq_docs,
                                                                                            tmp_path):
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, '-m', 'client', '--port', str(flow.grpc_port), *args],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    documents = tmp_path / 'documents'  # a copy: the test edits a file
    shutil.copytree(DOCUMENTS, documents)
    client, before = flow.client(), count(flow)
    with pytest.raises(BadServer) as error:  # a kind is one of two
        client.post('/index', DocList[QADoc]([QADoc(id='k', text='What is it?', answer='A virus.', kind='FAQ')]))
    assert "has kind 'FAQ'; a kind is one of ('faq', 'literature')" in error_text(error) and count(flow) == before
    out = run('index', str(documents), '--question-column', 'Question', '--answer-column', 'Answer')
    try:
        assert out.returncode == 0, out.stderr
        # the damaged PDF and the FAQ row without an answer are named and skipped; the rest is indexed
        skipped = [line for line in out.stderr.splitlines() if line.startswith('skipped: ')]
        assert len(skipped) == 2 and 'damaged.pdf: not a readable PDF' in skipped[0], out.stderr
        assert "faq.csv: row 3 (line 4): empty 'Answer'" in skipped[1], out.stderr
        indexed = int(out.stdout.strip().splitlines()[-1].split()[1])
        assert indexed == count(flow) - before == 14, out.stdout  # 3 FAQ entries, 11 passages of 5 documents

        def ask(question, **parameters):
            reply = client.post('/answer', DocList[QADoc]([QADoc(text=question)]),
                                parameters={'top_k': 3, 'return_matches': True, **parameters},
                                return_type=DocList[AnswerReply])[0]
            return reply, [a for a in reply.answers if not a.no_answer]

        # one question per format, answered from its passage (the span inside it, with document, section, offsets)
        for question, source, expected in [
            ('How long is the incubation period of COVID-19?', 'paper.json', '5 days'),      # CORD-19
            ('How long should I wash my hands with soap?', 'page.html', '20'),               # HTML
            ('What kind of mask should I wear indoors?', 'guideline.pdf', 'well-fitting'),   # PDF, second page
            ('How quickly does a rapid antigen test give a result?', 'notes.txt', '15 minutes'),
        ]:
            reply, spans = ask(question, collection='literature')
            assert all(m.kind == 'literature' for m in reply.matches) and reply.matches
            best = spans[0]
            assert expected in best.answer and best.kind == 'literature' and best.source == source, (question, spans)
            passage = next(m for m in reply.matches if m.id == best.context_id)
            assert passage.parent_id == best.parent_id and passage.id.startswith(f'{passage.parent_id}:')
            assert best.context[best.start:best.end] == best.answer and best.context == passage.text
            assert passage.offset_end - passage.offset_start == len(passage.text)
        # nothing of a script, style or template in any passage
        reply, _ = ask('zebrafalcon quokka tracking stylerulemarker templatemarker', collection='literature',
                       retrieval='lexical')
        assert not any(w in m.text for m in reply.matches for w in ('zebrafalcon', 'quokka', 'templatemarker'))
        # the FAQ of other column names: 'auto' answers from the FAQ entry when the reader trusts it
        reply, spans = ask('What are the most common symptoms of COVID-19?')
        faq_kinds = [m.kind for m in reply.matches]
        assert 'faq' in faq_kinds and 'literature' in faq_kinds  # both collections retrieved
        assert spans and spans[0].kind == 'faq' and 'Fever' in spans[0].answer + spans[0].context, spans
        found = search(flow, ['What are the most common symptoms of COVID-19?'], limit=3)[0].matches
        assert found[0].kind == 'faq' and found[0].answer.startswith('Fever, a dry cough')

        # indexing the same files again replaces, never duplicates; a document grown shorter since leaves no
        # passage of its older version
        again = run('index', str(documents), '--question-column', 'Question', '--answer-column', 'Answer')
        assert again.returncode == 0 and count(flow) - before == 14, again.stderr
        notes = documents / 'notes.md'
        notes.write_text(notes.read_text().split('## Booster doses')[0])  # 3 passages -> 2
        shorter = run('index', str(notes))
        assert shorter.returncode == 0 and count(flow) - before == 13, shorter.stderr
        # a whole document goes with every passage cut from it
        paper = '3f2c1d0e9b8a7f6e5d4c3b2a19087f6e5d4c3b2a'  # the CORD-19 paper_id
        out = run('delete', '--documents', paper, 'no-such-document')
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [f'deleted 3: {paper}:0 {paper}:1 {paper}:2', 'not found: no-such-document']
        assert count(flow) - before == 10  # 13 less the paper's 3 passages
        reply, _ = ask('How long is the incubation period of COVID-19?', collection='literature')
        assert all(m.parent_id != paper for m in reply.matches)
    finally:  # the other tests of this module see the FAQ alone again
        ids = [d.id for d in load_documents([documents], question_column='Question', answer_column='Answer').docs]
        client.post('/delete', DocList[QADoc]([QADoc(id=i) for i in ids]))
    assert count(flow) == before


def test_a_repeated_question_is_answered_from_memory_until_what_it_reads_changes(flow):
    client = flow.client()
    question = 'Can my cat catch the coronavirus from me?'

    def cache_stats():
        status = client.post('/qa/status', DocList[QADoc](), return_responses=True)[0].parameters['__results__']
        return next(v for k, v in status.items() if k.startswith('reader'))['answer_cache']

    def ask(text=question):
        return client.post('/answer', DocList[QADoc]([QADoc(text=text)]), parameters={'top_k': 2, 'limit': 5},
                           return_type=DocList[AnswerReply])[0].answers

    first, before = ask(), cache_stats()
    again = ask('  can my CAT catch the coronavirus   from me? ')  # the same question, as the reader reads it
    after = cache_stats()
    assert (after['hits'], after['misses']) == (before['hits'] + 1, before['misses'])
    assert [(a.answer, a.score, a.context_id) for a in again] == [(a.answer, a.score, a.context_id) for a in first]
    # a new document that is retrieved changes what is read: read again, and the new passage can answer
    doc = QADoc(id='cache-cat', text='Can cats catch the coronavirus from their owners?',
                answer='Cats can catch it from their owners, rarely, and then show mild signs.')
    client.post('/index', DocList[QADoc]([doc]))
    try:
        ask()
        assert cache_stats()['misses'] == after['misses'] + 1
    finally:
        client.post('/delete', DocList[QADoc]([QADoc(id='cache-cat')]))
    ask()  # deleted: what is read changed back, and that read is the one remembered from before
    assert cache_stats()['hits'] == after['hits'] + 1


def reader_result(response) -> dict:
    """What the reader returned (jina keys results by replica name, 'reader/rep-0')."""
    (result,) = [r for name, r in results(response).items() if name.split('/')[0] == 'reader']
    return result


def test_qa_test_and_eval_score_the_reader_that_answer_serves(flow):
    """flow.yml serves an ONNX int8 reader: /qa/test gives exactly its spans (a torch fp32 copy of the model could
    differ), and /qa/eval scores it (its own answer as gold: exact match)."""
    question = 'How long does the virus survive on surfaces?'
    span = flow.client().post('/answer', DocList[QADoc]([QADoc(text=question)]),
                              parameters={'limit': 1, 'confidence_threshold': 0}, return_type=DocList[QADoc]
                              )[0].answers[0]
    assert span.answer and span.context
    asked = DocList[QADoc]([QADoc(text=question, answers=DocList[AnswerSpan]([AnswerSpan(context=span.context)]))])
    (tested,) = reader_result(flow.client().post('/qa/test', asked, return_responses=True))['results']
    assert (tested['answer'], tested['start'], tested['end']) == (span.answer, span.start, span.end)
    # the same span; its confidence there lacks the evidence of the source (the FAQ question, its cosine)
    assert 0 < tested['score'] < 1
    gold = DocList[QADoc]([QADoc(text=question, answers=DocList[AnswerSpan](
        [AnswerSpan(answer=span.answer, start=span.start, context=span.context)]))])
    scored = reader_result(flow.client().post('/qa/eval', gold, return_responses=True))
    assert (scored['backend'], scored['count'], scored['exact_match'], scored['f1']) == ('onnx-int8', 1, 1.0, 1.0)


QA_CONTEXT = 'The natural reservoir of SARS-CoV-2 is most likely bats. The incubation period is 2 to 14 days.'


def test_qa_train_and_eval_read_files_from_the_service_data_dir(flow):
    """flow.yml sets no data_dir: the reader reads $COVIDQA_HOME/data (created on start). Runs last on this Flow: it
    replaces the served reader."""
    data = flow.home / 'data'
    assert data.is_dir()
    with open(data / 'small.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['context', 'question', 'answer_text', 'answer_start'])
        for question, answer in [('What is the reservoir?', 'bats'), ('How long is the incubation period?',
                                                                       '2 to 14 days'),
                                 ('What is most likely the natural reservoir?', 'bats')]:
            w.writerow([QA_CONTEXT, question, answer, QA_CONTEXT.index(answer)])
    client = flow.client()
    before = reader_result(client.post('/qa/eval', DocList[QADoc](), parameters={'file': 'small.csv'},
                                       return_responses=True))
    assert before['count'] == 3 and before['backend'] == 'onnx-int8'
    # an evaluation file without answers is refused before anything is trained: the served reader stays
    (data / 'questions.csv').write_text(f'context,question\n"{QA_CONTEXT}",What is the reservoir?\n')
    with pytest.raises(BadServer) as error:
        client.post('/qa/train', DocList[QADoc](), parameters={'file': 'small.csv', 'eval_file': 'questions.csv'})
    assert '/qa/train' in error_text(error) and 'questions.csv' in error_text(error)
    unchanged = reader_result(client.post('/qa/eval', DocList[QADoc](), parameters={'file': 'small.csv'},
                                          return_responses=True))
    assert unchanged['loss'] == pytest.approx(before['loss'], rel=1e-6)
    trained = reader_result(client.post('/qa/train', DocList[QADoc](), parameters={
        'file': 'small.csv', 'eval_file': 'small.csv', 'wait': True,
        'args': {'num_train_epochs': 1, 'batch_size': 2, 'max_seq_length': 128, 'learning_rate': 1e-4}},
        return_responses=True))
    assert trained['records'] == 3 and trained['steps'] >= 1 and trained['model_dir'] == str(
        (flow.home / 'models' / 'reader').resolve())
    assert trained['eval']['count'] == 3 and trained['backend'] == 'onnx-int8'
    after = reader_result(client.post('/qa/eval', DocList[QADoc](), parameters={'file': 'small.csv'},
                                      return_responses=True))
    assert after['loss'] == pytest.approx(trained['eval']['loss'], rel=1e-6)  # the trained reader is served now
    assert after['loss'] != pytest.approx(before['loss'], rel=1e-6)
    with pytest.raises(BadServer) as error:
        client.post('/qa/eval', DocList[QADoc](), parameters={'file': 'missing.csv'})
    assert "no file 'missing.csv' in the data directory" in error_text(error)


@pytest.mark.parametrize('index', ['exact', 'hnsw'])
def test_index_survives_a_restart(tmp_path, faq_docs, index):
    subset = faq_docs[:20]
    kind = {'indexer': {'index': index}}  # the store's in-memory index, chosen by uses_with
    with FlowProcess(home=tmp_path, overrides=kind) as first:
        first.client().post('/index', subset)
        before = search(first, subset.text, limit=3)
    assert (tmp_path / 'index' / 'shard-0' / 'store.sqlite').is_file()
    if index == 'hnsw':  # the indexer's close() saved the graph: the restart loads it
        assert list((tmp_path / 'index' / 'shard-0').glob('ann-v0-s*-n20.hnsw'))
    with FlowProcess(home=tmp_path, overrides=kind) as second:
        counted = results(second.client().post('/count', DocList[QADoc](), return_responses=True))
        after = search(second, subset.text, limit=3)
    assert indexer_reply(counted)['count'] == len(subset)
    assert [[m.id for m in q.matches] for q in after] == [[m.id for m in q.matches] for q in before]
    assert [[round(m.score, 5) for m in q.matches] for q in after] == [[round(m.score, 5) for m in q.matches]
                                                                        for q in before]


def test_two_shards_split_the_documents_merge_search_results_and_add_up_their_replies(tmp_path, faq_docs):
    subset = faq_docs[:40]
    with FlowProcess(home=tmp_path, index_shards=2) as flow:
        client = flow.client()
        indexed = results(client.post('/index', subset, return_responses=True))
        everything = search(flow, [subset[0].text], limit=1000)[0].matches
        found = search(flow, subset.text[:10], limit=3)
        deleted = results(client.post('/delete', DocList[QADoc]([QADoc(id=subset[0].id), QADoc(id='no-such-id')]),
                                      return_responses=True))
        counted = results(client.post('/count', DocList[QADoc](), return_responses=True))
        _, http_counted = http_post(flow, '/count', {'data': []})
        left = search(flow, [subset[0].text], limit=1000)[0].matches
    assert sorted(everything.id) == sorted(set(subset.id))  # both shards answered, each id once
    shard_dirs = sorted((tmp_path / 'index').glob('shard-*'))
    assert [d.name for d in shard_dirs] == ['shard-0', 'shard-1']
    for query, doc in zip(found, subset[:10]):
        assert len(query.matches) == 3 and query.matches[0].id == doc.id
        scores = [m.score for m in query.matches]
        assert scores == sorted(scores, reverse=True)
    assert sorted(left.id) == sorted(set(subset.id) - {subset[0].id})  # deleted from the shard that held it
    # every shard's reply is kept (one shard's alone would not add up to the totals below)
    owners = [zlib.crc32(i.encode()) % 2 for i in subset.id]
    per_shard = {int(r['shard']): r for r in indexed.values() if 'shard' in r}
    assert {s: int(r['stored']) for s, r in per_shard.items()} == {0: owners.count(0), 1: owners.count(1)}
    assert min(owners.count(0), owners.count(1)) > 0  # the test means something only if both shards hold some
    total, unique = indexer_reply(indexed), len(set(subset.id))  # the FAQ repeats a few questions
    assert (total['stored'], total['new'], total['count'], total['replied']) == (40, unique, unique, [0, 1])
    assert (indexer_reply(deleted)['deleted'], indexer_reply(deleted)['missing']) == ([subset[0].id], ['no-such-id'])
    assert indexer_reply(deleted)['count'] == unique - 1 == indexer_reply(counted)['count']
    assert indexer_reply(http_counted['parameters']['__results__'])['count'] == unique - 1
