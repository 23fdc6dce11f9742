"""The Reader Executor inside a real jina Flow (gRPC on 127.0.0.1), called with a real jina Client."""
import csv

import pytest

from client.flowctl import free_port
from covidqa.docs import AnswerSpan, DocList, MatchDoc, QADoc
from tests.helpers import shared_fraction

CONTEXT = 'The natural reservoir of SARS-CoV-2 is most likely bats. The incubation period is 2 to 14 days.'


@pytest.fixture(scope='module')
def flow(tmp_path_factory):
    from jina import Flow

    from executors.reader import Reader

    data_dir = tmp_path_factory.mktemp('data')
    with open(data_dir / 'dev.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['context', 'question', 'answer_text', 'answer_start'])
        w.writerow([CONTEXT, 'What is the reservoir?', 'bats', CONTEXT.index('bats')])
        w.writerow([CONTEXT, 'How long is the incubation period?', '2 to 14 days', CONTEXT.index('2 to 14')])
    (tmp_path_factory.mktemp('outside') / 'secret.csv').write_text('context,question\nx,y\n')
    f = Flow(port=free_port(), protocol='grpc', host='127.0.0.1').add(
        uses=Reader, name='reader',
        uses_with={'model': 'base', 'data_dir': str(data_dir), 'max_seq_length': 128, 'doc_stride': 32,
                   'model_dir': str(tmp_path_factory.mktemp('models') / 'reader')})
    with f:
        yield f


def reader_result(response) -> dict:
    """What the Reader returned: jina keys results by executor *replica* name ('reader/rep-0')."""
    results = response.parameters['__results__']
    keys = [k for k in results if k.split('/')[0] == 'reader']
    assert len(keys) == 1, results
    return results[keys[0]]


def query(question: str, contexts):
    return DocList[QADoc]([QADoc(text=question, matches=DocList[MatchDoc](
        [MatchDoc(id=f'm{i}', text='FAQ question', answer=c) for i, c in enumerate(contexts)]))])


def test_answer_endpoint_sets_answer_spans(flow):
    docs = flow.post('/answer', inputs=query('What is the reservoir?', [CONTEXT, 'Masks reduce spread.']),
                     parameters={'top_k': 3}, return_type=DocList[QADoc])
    answers = docs[0].answers
    assert 1 <= len(answers) <= 3
    for i, a in enumerate(answers):  # overlap_threshold 0.01 (the default): no near-copies of a better answer
        for b in answers[:i]:
            assert a.context_id != b.context_id or shared_fraction(a, b) <= 0.01, (a, b)
    every = flow.post('/answer', inputs=query('What is the reservoir?', [CONTEXT, 'Masks reduce spread.']),
                      parameters={'top_k': 3, 'overlap_threshold': 1}, return_type=DocList[QADoc])[0].answers
    assert len(every) == 3 and every[0].answer == answers[0].answer
    answers = every
    assert [a.score for a in answers] == sorted((a.score for a in answers), reverse=True)
    for a in answers:
        assert a.context in (CONTEXT, 'Masks reduce spread.')
        assert a.context[a.start:a.end] == a.answer
        assert a.context_id in ('m0', 'm1')


def test_answer_without_matches_is_no_answer(flow):
    docs = flow.post('/answer', inputs=DocList[QADoc]([QADoc(text='Anything?')]), return_type=DocList[QADoc])
    (none,) = docs[0].answers
    assert none.no_answer and none.answer is None and none.start == none.end == -1 and none.score == 1.0


def test_eval_file_and_docs_return_results(flow):
    from jina import Client

    client = Client(port=flow.port, protocol='grpc', host='127.0.0.1')
    response = client.post('/qa/eval', inputs=DocList[QADoc](), parameters={'file': 'dev.csv'},
                           return_responses=True)[0]
    result = reader_result(response)
    assert result['count'] == 2 and 0.0 <= result['exact_match'] <= result['f1'] <= 1.0 and result['loss'] > 0
    gold = DocList[QADoc]([QADoc(text='What is the reservoir?', answers=DocList[AnswerSpan](
        [AnswerSpan(answer='bats', start=CONTEXT.index('bats'), context=CONTEXT)]))])
    response = client.post('/qa/eval', inputs=gold, return_responses=True)[0]
    assert reader_result(response)['count'] == 1


def test_bad_requests_are_refused_and_flow_keeps_serving(flow):
    from jina.excepts import BadServer

    for parameters, message in [({'file': '../outside/secret.csv'}, 'outside the data directory'),
                                ({'file': 'missing.csv'}, 'no file'),
                                ({'top_k': 3}, 'unknown parameter')]:
        with pytest.raises(BadServer, match=message):
            flow.post('/qa/eval', inputs=DocList[QADoc](), parameters=parameters)
    with pytest.raises(BadServer, match='top_k.*must be an integer between 1 and 1000'):
        flow.post('/answer', inputs=query('q?', [CONTEXT]), parameters={'top_k': 0})
    docs = flow.post('/answer', inputs=query('What is the reservoir?', [CONTEXT]), return_type=DocList[QADoc])
    assert len(docs[0].answers) == 1


def test_qa_train_runs_in_the_background_and_answers_keep_coming(flow):
    """jina runs one request at a time per Executor: ``/qa/train`` returns at once and trains in a thread, so
    ``/answer`` is served meanwhile; ``/qa/status`` follows it to the end. Last in this module: it swaps the model."""
    import time

    from jina import Client

    client = Client(port=flow.port, protocol='grpc', host='127.0.0.1')
    started = reader_result(client.post('/qa/train', inputs=DocList[QADoc](), return_responses=True, parameters={
        'file': 'dev.csv', 'args': {'num_train_epochs': 40, 'batch_size': 1}})[0])
    assert started['state'] == 'running'
    with pytest.raises(Exception, match='already in progress'):
        client.post('/qa/train', inputs=DocList[QADoc](), parameters={'file': 'dev.csv'})
    answered_while_training, status = 0, started
    deadline = time.monotonic() + 600
    while status['state'] == 'running' and time.monotonic() < deadline:
        docs = client.post('/answer', inputs=query('What is the reservoir?', [CONTEXT]), return_type=DocList[QADoc],
                           parameters={'no_answer_threshold': 0.0})
        assert docs[0].answers and docs[0].answers[0].context == CONTEXT
        status = reader_result(client.post('/qa/status', inputs=DocList[QADoc](), return_responses=True)[0])
        answered_while_training += status['state'] == 'running'
    assert status['state'] == 'done', status
    assert status['result']['records'] == 2 and status['result']['steps'] == 80
    assert answered_while_training >= 1, status  # at least one answer came while the training ran
