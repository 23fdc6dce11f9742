"""Remembered answers (covidqa.reader.cache): the key moves with everything the answers depend on, the cache is
bounded, least recently used out first."""
import pytest

from covidqa.reader.cache import AnswerCache, cache_key

BASE = dict(reader_key='reader#0', question='How long is the incubation period?', contexts=['a passage', 'an answer'],
            ids=['p1', 'f1'], titles=['Paper', 'FAQ question'], cosines=[0.5, 0.7], kinds=['literature', 'faq'],
            options={'top_k': 1, 'confidence_threshold': None}, faq_first=True)


def key(**changes):
    return cache_key(**{**BASE, **changes})


def test_the_key_follows_what_the_answers_depend_on_and_nothing_else():
    assert key(question='  how long is the INCUBATION   period? ') == key()  # as the uncased reader sees it
    for changes in [dict(question='How long is the incubation period'),  # punctuation is read
                    dict(contexts=['a passage, edited', 'an answer']),      # a document replaced
                    dict(contexts=['an answer'], ids=['f1'], titles=['FAQ question'], cosines=[0.7], kinds=['faq']),
                    dict(ids=['p2', 'f1']),                                 # another document retrieved
                    dict(cosines=[0.5, 0.71]),                              # another embedder version
                    dict(reader_key='reader#1'),                            # another reader swapped in
                    dict(options={'top_k': 3, 'confidence_threshold': None}),
                    dict(faq_first=False)]:
        assert key(**changes) != key(), changes


def test_bounded_least_recently_used_first_out_and_counted():
    cache = AnswerCache(2)
    cache.put('a', [1])
    cache.put('b', [2])
    assert cache.get('a') == [1]  # a is now the most recent
    cache.put('c', [3])
    assert cache.get('b') is None and cache.get('c') == [3] and cache.get('a') == [1]
    assert cache.stats() == {'hits': 3, 'misses': 1, 'entries': 2, 'max_entries': 2}
    off = AnswerCache(0)
    off.put('a', [1])
    assert off.get('a') is None
    with pytest.raises(ValueError, match='max_entries must be a non-negative integer'):
        AnswerCache(-1)
