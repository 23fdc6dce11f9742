"""The indexer follows the embedder version: TARGET moves -> every stored document is re-embedded -> ACTIVE moves,
searches keep working throughout, nothing is lost, and a rollback goes back to the old vectors."""
import time

import numpy as np
import torch

from client.flowctl import FlowProcess
from covidqa.docs import DocList, QADoc
from covidqa.embedding.encoder import Embedder
from covidqa.embedding.versions import ModelVersions
from covidqa.models.loading import load_encoder, load_tokenizer
from toydata import generate_qa


def count(flow):
    response = flow.client().post('/count', DocList[QADoc](), return_responses=True)
    return next(iter(response[0].parameters['__results__'].values()))


def wait_for_version(flow, version, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = count(flow)
        if state['model_version'] == version and not state['reembedding']:
            return state
        time.sleep(0.5)
    raise AssertionError(f'the index did not reach embedder v{version}: {count(flow)}')


def test_new_embedder_version_reembeds_the_index_and_rollback_restores_it(tmp_path, faq_csv):
    docs = generate_qa(faq_csv)[:30]
    versions = ModelVersions(tmp_path / 'models' / 'embedder')
    # fp32 torch in the Flow so that its scores can be checked to 1e-4 against a torch Embedder of the new version
    # (flow.yml's int8 vectors differ from fp32 by ~0.02 in cosine and depend slightly on the batch)
    exact = {'embedder': {'backend': 'torch'}, 'indexer': {'backend': 'torch'}}
    with FlowProcess(home=tmp_path, overrides=exact) as flow:
        client = flow.client()
        client.post('/index', docs)
        before = client.post('/search', DocList[QADoc]([QADoc(text=docs[2].text)]), parameters={'limit': 30},
                             return_type=DocList[QADoc])[0].matches

        encoder = load_encoder('base')  # a different model: the base encoder with its last layer perturbed
        with torch.no_grad():
            for p in encoder.encoder.layer[-1].parameters():
                p.add_(torch.randn_like(p) * 0.05)
        v1 = versions.save_new(encoder, load_tokenizer('base'), {'note': 'test'})
        versions.set_target(v1)
        # Searches while the indexer re-embeds, as the service reports it: /count gives `reembedding` (up from the
        # start of the one re-embedding run to its end) and the store's `model_version` (moves to v1 at the swap).
        # /count and /search alternate; a search was served *during* the re-embedding when the /count answered
        # before it was sent and the /count sent after its reply came both say `reembedding` on v0. A search that
        # waited for the re-embedding (or for the swap) would be followed by a /count on v1: it would not count,
        # and with none counted the test fails.
        polls, searches = [], []  # (sent, received, reembedding, model_version); (started, ended)

        def poll():
            sent = time.monotonic()
            state = count(flow)
            polls.append((sent, time.monotonic(), state['reembedding'], state['model_version']))
            return state

        state = poll()
        deadline = time.monotonic() + 120
        while not (state['model_version'] == v1 and not state['reembedding']) and time.monotonic() < deadline:
            started = time.monotonic()
            assert client.post('/search', DocList[QADoc]([QADoc(text=docs[0].text)]),
                               return_type=DocList[QADoc])[0].matches
            searches.append((started, time.monotonic()))
            state = poll()
        # (reply of one /count, request of the next) when both said `reembedding` on v0: re-embedding all along
        during = [(earlier[1], later[0]) for earlier, later in zip(polls, polls[1:])
                  if earlier[2] and later[2] and earlier[3] == later[3] == 0]
        inside = [(a, b) for a, b in searches if any(lo < a and b < hi for lo, hi in during)]
        timeline = [(round(sent, 3), round(received, 3), reembedding, int(version))
                    for sent, received, reembedding, version in polls]
        assert any(reembedding for _, _, reembedding, _ in polls), f'no /count saw the re-embedding: {timeline}'
        assert inside, (f'none of {len(searches)} searches was served while the index re-embedded: /count '
                        f'(sent, received, reembedding, model_version): {timeline}')
        state = wait_for_version(flow, v1)
        assert state['count'] == len(set(docs.id))
        assert versions.active() == v1
        after = client.post('/search', DocList[QADoc]([QADoc(text=docs[2].text)]), parameters={'limit': 30},
                            return_type=DocList[QADoc])[0].matches
        assert after[0].id == docs[2].id  # the question still finds itself: query and documents use one model
        expected = Embedder(versions.model_path(v1)).embed_texts([docs[2].text, after[1].text])
        cosine = float(expected[0] @ expected[1] / np.linalg.norm(expected[0]) / np.linalg.norm(expected[1]))
        assert abs(after[1].score - cosine) < 1e-4  # scores come from the new model's vectors
        assert [m.score for m in after] != [m.score for m in before]

        versions.set_target(0)  # roll back
        wait_for_version(flow, 0)
        rolled = client.post('/search', DocList[QADoc]([QADoc(text=docs[2].text)]), parameters={'limit': 30},
                             return_type=DocList[QADoc])[0].matches
        assert [m.id for m in rolled] == [m.id for m in before]
        np.testing.assert_allclose([m.score for m in rolled], [m.score for m in before], atol=1e-5)
