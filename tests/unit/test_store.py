"""The indexer's document store: upsert/replace, delete, search order, persistence, re-embedding."""
import threading

import numpy as np
import pytest

from covidqa.docs import DocList, StoredDoc
from covidqa.store import DocumentStore


class FakeVersionedEmbedder:
    """Deterministic text -> vector map standing in for *another model version* (the store's input, not the
    thing under test): version v rotates the hash-seeded vectors so versions are distinguishable."""

    def __init__(self, version):
        self.version = version

    def embed_texts(self, texts):
        out = []
        for t in texts:
            rng = np.random.default_rng(abs(hash((t, self.version))) % 2**32)
            out.append(rng.standard_normal(8).astype(np.float32))
        return np.stack(out)


def docs(*pairs, version=0):
    emb = FakeVersionedEmbedder(version)
    return DocList[StoredDoc]([StoredDoc(id=i, text=t, model_version=version, embedding=emb.embed_texts([t])[0])
                               for i, t in pairs])


def test_upsert_replaces_by_id_and_search_is_best_first(tmp_path):
    store = DocumentStore(tmp_path)
    assert store.upsert(docs(('a', 'alpha'), ('b', 'beta'), ('c', 'gamma'))) == 3
    assert store.upsert(docs(('b', 'beta two'))) == 0
    assert store.count() == 3 and store.get(['b'])[0].text == 'beta two'
    query = FakeVersionedEmbedder(0).embed_texts(['gamma'])
    found, scores = store.search(query, limit=10)[0]
    assert found[0].id == 'c' and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert list(scores) == sorted(scores, reverse=True) and len(found) == 3


def test_delete_reports_missing_ids_and_persists(tmp_path):
    store = DocumentStore(tmp_path)
    store.upsert(docs(('a', 'alpha'), ('b', 'beta')))
    assert store.delete(['a', 'zzz']) == (['a'], ['zzz'])
    reopened = DocumentStore(tmp_path)
    assert reopened.ids() == ['b']
    assert reopened.search(FakeVersionedEmbedder(0).embed_texts(['beta']), 1)[0][0][0].id == 'b'


def test_empty_store_search_returns_no_matches(tmp_path):
    found, scores = DocumentStore(tmp_path).search(np.ones((2, 8), np.float32), 5)[0]
    assert len(found) == 0 and len(scores) == 0


@pytest.mark.slow
def test_reembed_moves_every_document_to_the_new_version_and_keeps_concurrent_writes(tmp_path):
    store = DocumentStore(tmp_path, embedder_factory=FakeVersionedEmbedder)
    store.upsert(docs(*[(str(i), f'text {i}') for i in range(200)]))
    gate = threading.Event()
    original = FakeVersionedEmbedder.embed_texts

    def slow(self, texts):
        gate.wait(5)
        return original(self, texts)

    FakeVersionedEmbedder.embed_texts = slow
    try:
        worker = threading.Thread(target=store.reembed, args=(3,), kwargs={'batch_size': 50})
        worker.start()
        store.upsert(docs(('new', 'added during re-embedding')))   # written with the old version
        store.delete(['5'])
        assert store.search(FakeVersionedEmbedder(0).embed_texts(['text 7']), 1)[0][0][0].id == '7'  # still serving
        gate.set()
        worker.join(30)
    finally:
        FakeVersionedEmbedder.embed_texts = original
    assert store.versions() == {3: 200}
    assert 'new' in store.ids() and '5' not in store.ids()
    found = store.search(FakeVersionedEmbedder(3).embed_texts(['added during re-embedding']), 1)[0][0]
    assert found[0].id == 'new'
    assert DocumentStore(tmp_path).versions() == {3: 200}  # persisted
