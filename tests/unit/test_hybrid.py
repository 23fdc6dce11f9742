"""Hybrid retrieval: the fusion of two rankings (a pure function, on hand-made scores), the FTS5 query built from
a question, and the store's lexical (BM25) index: kept in step with every write, delete and replace, persisted,
built once for a store written before it existed, and searched alone or fused with the vectors."""
import sqlite3

import pytest

from covidqa.docs import DocList, StoredDoc
from covidqa.index.hybrid import fts_query, fuse
from covidqa.index.hybrid import search as hybrid_search
from covidqa.index.store import DB_FILE, DocumentStore

from .test_store import FakeVersionedEmbedder, docs


def test_fuse_weighs_the_two_scaled_rankings():
    dense = [(1, 0.9), (2, 0.5), (4, 0.7)]  # cosine min-max over these: 1 -> 1.0, 4 -> 0.5, 2 -> 0.0
    lexical = [(2, 12.0), (3, 3.0)]  # BM25 / best: 2 -> 1.0, 3 -> 0.25
    fused = fuse(dense, lexical, bm25_weight=0.7, limit=10)
    assert [label for label, _ in fused] == [2, 1, 3, 4]
    assert [round(score, 3) for _, score in fused] == [0.7, 0.3, 0.175, 0.15]
    assert [label for label, _ in fuse(dense, lexical, 0.0, 10)][:3] == [1, 4, 2]  # the cosine alone
    assert [label for label, _ in fuse(dense, lexical, 1.0, 10)][:2] == [2, 3]  # BM25 alone
    assert fuse(dense, lexical, 0.7, limit=2) == fused[:2]
    assert fuse([], [], 0.7, 5) == []
    assert fuse([(7, 0.3)], [], 0.5, 5) == [(7, 0.5)]  # one candidate: the best of its ranking
    with pytest.raises(ValueError, match='bm25_weight must be between 0 and 1'):
        fuse(dense, lexical, 1.5, 10)


def test_fts_query_quotes_words_and_drops_stop_words():
    assert fts_query('What is the incubation period of COVID-19?') == '"incubation" OR "period" OR "covid" OR "19"'
    # FTS5 syntax in a question is only words here: nothing a client sends is run as a query operator
    assert fts_query('masks" OR NEAR(virus*) -- AND ^cats') == '"masks" OR "near" OR "virus" OR "cats"'
    assert fts_query('what is it?') is None and fts_query('') is None and fts_query('?!') is None
    assert fts_query(' '.join(f'w{i}' for i in range(100)), max_terms=3) == '"w0" OR "w1" OR "w2"'


TEXTS = (('a', 'Masks reduce the spread of respiratory droplets'),
         ('b', 'The incubation period is between 1 and 14 days'),
         ('c', 'Wash your hands with soap for twenty seconds'))


def query(store, text, retrieval, limit=3):
    vector = FakeVersionedEmbedder(0).embed_texts([text])
    found, scores = hybrid_search(store, vector, limit, texts=[text], retrieval=retrieval)[0]
    return list(found.id), list(scores)


@pytest.mark.parametrize('kind', ['exact', 'hnsw'])
def test_lexical_index_follows_writes_deletes_and_restarts(tmp_path, kind):
    store = DocumentStore(tmp_path, index=kind)
    store.upsert(docs(*TEXTS))
    ids, scores = query(store, 'How long is the incubation period?', 'lexical')
    assert ids == ['b'] and scores[0] > 0  # only b shares a word
    assert query(store, 'washing hands', 'lexical')[0] == ['c']  # Porter stems: washing -> wash
    store.upsert(docs(('b', 'Symptoms start within two weeks')))  # replaced: its old words are gone
    assert query(store, 'incubation period', 'lexical')[0] == []
    assert query(store, 'symptoms', 'lexical')[0] == ['b']
    store.delete(['c'])
    assert query(store, 'hands soap', 'lexical')[0] == []
    store.close()
    reopened = DocumentStore(tmp_path, index=kind)
    assert query(reopened, 'masks spread', 'lexical')[0] == ['a']
    assert query(reopened, 'symptoms', 'lexical')[0] == ['b']


def test_a_faq_entry_is_found_by_the_words_of_its_answer(tmp_path):
    store = DocumentStore(tmp_path)
    entry = docs(('faq', 'Should I wear a mask?'))[0]
    entry.answer = 'Cloth face coverings slow the spread of the virus.'
    store.upsert(DocList[StoredDoc]([entry, *docs(('other', 'Can pets catch it?'))]))
    assert query(store, 'do face coverings work', 'lexical')[0] == ['faq']


def test_hybrid_fuses_both_rankings_and_needs_the_query_text(tmp_path):
    store = DocumentStore(tmp_path)
    store.upsert(docs(*TEXTS))
    text = 'incubation period'
    dense_ids, cosines = query(store, text, 'dense')
    ids, scores = query(store, text, 'hybrid')
    assert ids[0] == 'b'  # BM25's only match, whatever the (arbitrary) vectors say
    assert sorted(ids) == sorted(dense_ids) and all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    vector = FakeVersionedEmbedder(0).embed_texts([text])
    assert hybrid_search(store, vector, 3, texts=[text], retrieval='hybrid', bm25_weight=0.0)[0][0].id == dense_ids
    with pytest.raises(ValueError, match='hybrid retrieval needs the text of every query'):
        hybrid_search(store, vector, 3, retrieval='hybrid')
    with pytest.raises(ValueError, match="retrieval must be one of"):
        hybrid_search(store, vector, 3, texts=[text], retrieval='sparse')
    assert query(store, 'what is it', 'lexical') == ([], [])  # no word left: no lexical match, no error
    assert query(store, 'what is it', 'hybrid')[0] == query(store, 'what is it', 'dense')[0]  # the cosine alone


def test_a_store_written_before_the_lexical_index_is_indexed_on_open(tmp_path):
    store = DocumentStore(tmp_path)
    store.upsert(docs(*TEXTS))
    store.close()
    db = sqlite3.connect(tmp_path / DB_FILE)  # as an older version of the store left it: no lexical index
    db.executescript("DROP TRIGGER docs_lexical_insert; DROP TRIGGER docs_lexical_delete; DROP TABLE lexical; "
                     "DELETE FROM meta WHERE key = 'lexical';")
    db.close()
    reopened = DocumentStore(tmp_path)
    assert query(reopened, 'incubation', 'lexical')[0] == ['b']
    reopened.upsert(docs(('d', 'Vaccines train the immune system')))
    assert query(reopened, 'vaccines', 'lexical')[0] == ['d']
    assert query(reopened, 'vaccines immune', 'hybrid')[0][0] == 'd'  # BM25's only match: >= 0.7, others <= 0.3
