import pytest

from covidqa.index.replies import ALL, combine, indexer_reply


def test_counts_add_up_and_ids_are_joined_over_the_shards():
    replies = [{'shard': 0.0, 'shards': 2.0, 'count': 3.0, 'deleted': ['a'], 'missing': ['x']},
               {'shard': 1.0, 'shards': 2.0, 'count': 4.0, 'deleted': ['b'], 'missing': []}]
    assert combine(replies) == {'shard': ALL, 'shards': 2, 'replied': [0, 1], 'count': 7, 'deleted': ['a', 'b'],
                                'missing': ['x']}


def test_index_replies_and_versions():
    replies = [{'shard': 1, 'shards': 2, 'stored': 2, 'new': 1, 'count': 9, 'model_version': 3, 'reembedding': False},
               {'shard': 0, 'shards': 2, 'stored': 5, 'new': 5, 'count': 6, 'model_version': 3, 'reembedding': True}]
    total = combine(replies)
    assert (total['stored'], total['new'], total['count'], total['model_version'], total['reembedding'],
            total['replied']) == (7, 6, 15, 3, True, [0, 1])


def test_shards_on_different_versions_or_no_replies_are_refused():
    with pytest.raises(ValueError, match='different embedder versions'):
        combine([{'shard': 0, 'model_version': 1}, {'shard': 1, 'model_version': 2}])
    with pytest.raises(ValueError, match='no shard replies'):
        combine([])


def test_indexer_reply_adds_up_the_shards_and_ignores_other_executors():
    shards = {'indexer/shard-0/rep-0': {'shard': 0, 'count': 2}, 'indexer/shard-1/rep-0': {'shard': 1, 'count': 5},
              'finetuner': {'labels': 4, 'count': 100}}
    assert indexer_reply(shards)['count'] == 7
    assert indexer_reply(shards)['replied'] == [0, 1]
    assert indexer_reply({'indexer': {'shard': 0, 'count': 2}})['count'] == 2
    with pytest.raises(ValueError, match='no indexer reply'):
        indexer_reply({'finetuner': {'labels': 4}})
