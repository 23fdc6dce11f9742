"""The indexer's document store: upsert/replace, delete, search order, persistence, re-embedding, both index kinds
(exact, hnsw), two processes' stores over one directory, snapshots, the import of the old format, and the version
protocol (a query embedded with one version never meets vectors of another)."""
import subprocess
import sys
import threading

import numpy as np
import pytest

from covidqa.docs import DocList, QADoc, StoredDoc
from covidqa.embedding.versions import ModelVersions
from covidqa.index.store import DocumentStore, StaleVersion
from covidqa.index.versioned import VersionedIndex

KINDS = ['exact', 'hnsw']


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


@pytest.mark.parametrize('kind', KINDS)
def test_upsert_replaces_by_id_and_search_is_best_first(tmp_path, kind):
    store = DocumentStore(tmp_path, index=kind)
    assert store.upsert(docs(('a', 'alpha'), ('b', 'beta'), ('c', 'gamma'))) == 3
    assert store.upsert(docs(('b', 'beta two'))) == 0
    assert store.count() == 3 and store.get(['b'])[0].text == 'beta two'
    query = FakeVersionedEmbedder(0).embed_texts(['gamma'])
    found, scores = store.search(query, limit=10)[0]
    assert found[0].id == 'c' and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert list(scores) == sorted(scores, reverse=True) and len(found) == 3


@pytest.mark.parametrize('kind', KINDS)
def test_delete_reports_missing_ids_and_persists(tmp_path, kind):
    store = DocumentStore(tmp_path, index=kind)
    store.upsert(docs(('a', 'alpha'), ('b', 'beta')))
    assert store.delete(['a', 'zzz']) == (['a'], ['zzz'])
    assert store.missing(['a', 'b', 'zzz', 'a']) == ['a', 'zzz']
    reopened = DocumentStore(tmp_path, index=kind)
    assert reopened.ids() == ['b'] and reopened.count() == 1
    assert reopened.search(FakeVersionedEmbedder(0).embed_texts(['beta']), 1)[0][0][0].id == 'b'


def test_empty_store_search_returns_no_matches(tmp_path):
    found, scores = DocumentStore(tmp_path).search(np.ones((2, 8), np.float32), 5)[0]
    assert len(found) == 0 and len(scores) == 0


@pytest.mark.slow
@pytest.mark.parametrize('kind', KINDS)
def test_reembed_moves_every_document_to_the_new_version_and_keeps_concurrent_writes(tmp_path, kind):
    store = DocumentStore(tmp_path, embedder_factory=FakeVersionedEmbedder, index=kind)
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
    assert DocumentStore(tmp_path, index=kind).versions() == {3: 200}  # persisted


def vec(text, version=0):
    return FakeVersionedEmbedder(version).embed_texts([text])


@pytest.mark.parametrize('kind', KINDS)
def test_two_stores_over_one_directory_see_each_others_writes(tmp_path, kind):
    """jina replicas: two processes open one shard directory; a write through one is searched through the other."""
    first, second = DocumentStore(tmp_path, index=kind), DocumentStore(tmp_path, index=kind)
    first.upsert(docs(('a', 'alpha'), ('b', 'beta')))
    assert second.search(vec('beta'), 1)[0][0][0].id == 'b' and second.count() == 2
    second.upsert(docs(('b', 'beta replaced'), ('c', 'gamma')))
    found, scores = first.search(vec('beta replaced'), 3)[0]
    assert found[0].id == 'b' and found[0].text == 'beta replaced' and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert sorted(found.id) == ['a', 'b', 'c']  # the replaced version of b is gone, not a second match
    first.delete(['a'])
    assert 'a' not in second.search(vec('alpha'), 10)[0][0].id and second.missing(['a']) == ['a']


@pytest.mark.parametrize('kind', KINDS)
def test_a_version_moved_by_another_process_is_followed(tmp_path, kind):
    mover = DocumentStore(tmp_path, embedder_factory=FakeVersionedEmbedder, index=kind)
    follower = DocumentStore(tmp_path, index=kind)
    mover.upsert(docs(*[(str(i), f'text {i}') for i in range(50)]))
    assert follower.search(vec('text 3'), 1, version=0)[0][0][0].id == '3'
    mover.reembed(2)
    with pytest.raises(StaleVersion):  # the follower's query of v0 is refused, not compared with v2 vectors
        follower.search(vec('text 3'), 1, version=0)
    assert follower.version == 2
    found, scores = follower.search(vec('text 3', 2), 1, version=2)[0]
    assert found[0].id == '3' and scores[0] == pytest.approx(1.0, abs=1e-5)
    if kind == 'hnsw':  # the mover wrote the new version's snapshot before the swap: the follower loaded it
        assert [p.name for p in tmp_path.glob('ann-*.hnsw')] == ['ann-v2-s50-n50.hnsw']


def test_hnsw_restart_loads_the_snapshot_and_replays_later_writes(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    batch = DocList[StoredDoc]([StoredDoc(id=str(i), text=f't{i}', embedding=v) for i, v in enumerate(vectors)])
    store = DocumentStore(tmp_path, index='hnsw')
    store.upsert(batch)
    snapshot = store.snapshot(force=True)
    assert snapshot is not None and snapshot.name == 'ann-v0-s300-n300.hnsw'
    store.delete(['0'])
    store.upsert(DocList[StoredDoc]([StoredDoc(id='new', text='new', embedding=-vectors[0])]))
    # no close(): a crash after the writes were acknowledged; the snapshot does not cover them
    reopened = DocumentStore(tmp_path, index='hnsw')
    assert reopened._ann_seq == 302 and reopened.count() == 300
    assert reopened.search(-vectors[0], 1)[0][0][0].id == 'new'
    assert '0' not in reopened.search(vectors[0], 5)[0][0].id
    assert reopened.search(vectors[7], 1)[0][0][0].id == '7'


def test_acknowledged_writes_survive_a_killed_process(tmp_path):
    script = (f'import os, numpy as np\n'
              f'from covidqa.docs import DocList, QADoc, StoredDoc\n'
              f'from covidqa.index.store import DocumentStore\n'
              f's = DocumentStore({str(tmp_path)!r}, index="hnsw")\n'
              f's.upsert(DocList[StoredDoc]([StoredDoc(id=str(i), text="t", embedding=np.eye(8, dtype=np.float32)[i])'
              f' for i in range(8)]))\n'
              f'os._exit(0)\n')  # no close, no snapshot, no checkpoint of the WAL
    subprocess.run([sys.executable, '-c', script], check=True, timeout=60)
    store = DocumentStore(tmp_path, index='hnsw')
    assert store.count() == 8 and store.search(np.eye(8, dtype=np.float32)[5], 1)[0][0][0].id == '5'


def test_upsert_and_search_refuse_vectors_of_another_version(tmp_path):
    store = DocumentStore(tmp_path, embedder_factory=FakeVersionedEmbedder)
    store.upsert(docs(('a', 'alpha')))
    store.reembed(1)
    with pytest.raises(StaleVersion):
        store.upsert(docs(('b', 'beta'), version=0))
    with pytest.raises(StaleVersion):
        store.search(vec('alpha', 0), 1, version=0)
    assert store.search(vec('alpha', 1), 1, version=1)[0][1][0] == pytest.approx(1.0, abs=1e-5)
    assert store.count() == 1


class RacingIndex(VersionedIndex):
    """A VersionedIndex whose embedder is the fake one; embedding the query with v0 moves the store to v1 in the
    middle (what a re-embedding finishing in the watcher thread does), deterministically."""

    def embedder(self, version):
        index = self

        class Hooked(FakeVersionedEmbedder):
            def embed_texts(self, texts):
                if self.version == 0 and texts == ['query'] and not index.store.reembedding:
                    index.store.reembed(1)
                return super().embed_texts(texts)
        return Hooked(version)


def test_a_query_embedded_before_the_version_moved_is_embedded_again(tmp_path):
    versions = ModelVersions(tmp_path / 'versions')
    index = RacingIndex(tmp_path / 'shard', versions, watch_interval=None)
    index.upsert(DocList[QADoc]([QADoc(id='q', text='query'), QADoc(id='o', text='other')]), fields=('text',))
    found, scores = index.search(DocList[QADoc]([QADoc(text='query')]), 1)[0]
    # the old ordering (vectors swapped, then the version moved) compared the v0 query with v1 vectors
    assert index.version == 1 and found[0].id == 'q' and scores[0] == pytest.approx(1.0, abs=1e-5)


# ---- collections: FAQ entries and literature passages in one store ----------------------------------------------
def mixed_docs():
    emb = FakeVersionedEmbedder(0)
    rows = [dict(id='faq-1', text='How long is the incubation period?', answer='About five days.'),
            dict(id='faq-2', text='Should I wear a mask?', answer='Yes, in crowded places.', kind='faq'),
            dict(id='old', text='An entry indexed before kinds', answer=''),  # no answer, no kind: literature
            *[dict(id=f'paper:{i}', text=f'passage {i} on the incubation period of coronaviruses', parent_id='paper',
                   kind='literature', offset_start=100 * i, offset_end=100 * i + 50) for i in range(40)],
            dict(id='note:0', text='incubation notes', parent_id='note', kind='literature')]
    return DocList[StoredDoc]([StoredDoc(model_version=0, embedding=emb.embed_texts([r['text']])[0], **r)
                               for r in rows])


@pytest.mark.parametrize('kind', KINDS)
def test_search_by_kind_finds_enough_of_that_kind_in_both_rankings(tmp_path, kind):
    from covidqa.docs import kind_of
    from covidqa.index import hybrid

    store = DocumentStore(tmp_path, index=kind)
    store.upsert(mixed_docs())
    query = FakeVersionedEmbedder(0).embed_texts(['How long is the incubation period?'])
    for kinds, expected in ((frozenset({'faq'}), {'faq-1', 'faq-2'}), (frozenset({'literature'}), None)):
        for retrieval in ('dense', 'lexical', 'hybrid'):
            found, _ = hybrid.search(store, query, 3, version=0, texts=['incubation period'], retrieval=retrieval,
                                     kinds=kinds)[0]
            assert found and {kind_of(d) for d in found} == set(kinds), (kinds, retrieval, found.id)
            if expected is not None and retrieval != 'lexical':  # 'Should I wear a mask?' has no query word
                assert set(found.id) == expected, (retrieval, found.id)
    # a dense search for the rare kind reaches past the first few dozen neighbours (40 passages in front of it)
    far, _ = store.documents(store.dense(FakeVersionedEmbedder(0).embed_texts(['passage 3 on the incubation period '
                                                                               'of coronaviruses']), 2, 0,
                                         frozenset({'faq'})))[0]
    assert set(far.id) == {'faq-1', 'faq-2'}
    assert len(store.dense(query, 100, 0)[0]) == 44 and store.dense(query, 100, 0, frozenset({'faq'}))[0][0][0] > 0


@pytest.mark.parametrize('kind', KINDS)
def test_delete_whole_documents_removes_every_passage_and_names_unknown_ones(tmp_path, kind):
    store = DocumentStore(tmp_path, index=kind)
    store.upsert(mixed_docs())
    deleted, missing = store.delete(['paper', 'faq-1', 'no-such-document'], documents=True)
    assert set(deleted) == {f'paper:{i}' for i in range(40)} | {'faq-1'} and missing == ['no-such-document']
    assert store.count() == 3 and sorted(store.ids()) == ['faq-2', 'note:0', 'old']
    reopened = DocumentStore(tmp_path, index=kind)  # durable
    assert sorted(reopened.ids()) == ['faq-2', 'note:0', 'old']
    assert all(d.parent_id != 'paper' for d in reopened.search(FakeVersionedEmbedder(0).embed_texts(['passage 1']),
                                                                10)[0][0])
    assert store.delete(['paper'], documents=True) == ([], ['paper'])
