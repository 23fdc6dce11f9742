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
        searched_while = 0
        deadline = time.monotonic() + 120
        while count(flow)['model_version'] != v1 and time.monotonic() < deadline:  # search keeps being served
            assert client.post('/search', DocList[QADoc]([QADoc(text=docs[0].text)]),
                               return_type=DocList[QADoc])[0].matches
            searched_while += 1
        # loading v1 and re-embedding take far longer than one search, so at least one ran while they did
        assert searched_while >= 1
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
