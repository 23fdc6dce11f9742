"""One reply from the replies of an indexer's shards: what ``/index``, ``/update``, ``/delete`` and ``/count``
answer when the index is split over ``shards: N``.

Every shard answers for the documents it holds (its ids hash to it), and the reply keeps every shard's answer in
``response.parameters['__results__']`` (one entry a shard); the totals are sums and unions. No jina here: clients
(the CLI, ``make serve``, benchmarks, tests) read the indexer's reply with :func:`indexer_reply`. Example::

    combine([{'shard': 0, 'shards': 2, 'count': 3, 'deleted': ['a'], 'missing': []},
             {'shard': 1, 'shards': 2, 'count': 4, 'deleted': [], 'missing': ['b']}])
    # -> {'shard': 'all', 'shards': 2, 'replied': [0, 1], 'count': 7, 'deleted': ['a'], 'missing': ['b']}
"""
from __future__ import annotations

from typing import Dict, List, Mapping

ALL = 'all'  # the ``shard`` of a combined reply
SUMMED = ('count', 'stored', 'new')
JOINED = ('deleted', 'missing', 'documents')


def combine(replies: List[Mapping]) -> Dict:
    """The combined reply of shard replies (dicts with ``shard`` and any of ``count``, ``stored``, ``new``,
    ``deleted``, ``missing``, ``model_version``, ``reembedding``). ``replied`` lists the shards that answered, so a
    client can tell a missing shard from an empty one; ``documents`` (a ``/delete`` of whole documents: the document
    ids a shard found) joins too. Raises ``ValueError`` on shards that disagree on the model
    version (never expected: they follow the same ``TARGET``) or on an empty list."""
    if not replies:
        raise ValueError('no shard replies to combine')
    combined: Dict = {'shard': ALL, 'shards': max(int(r.get('shards', 1)) for r in replies),
                      'replied': sorted(int(r['shard']) for r in replies)}
    for key in SUMMED:
        if any(key in r for r in replies):
            combined[key] = int(sum(r.get(key, 0) for r in replies))
    for key in JOINED:
        if any(key in r for r in replies):
            combined[key] = sorted({i for r in replies for i in r.get(key, [])})
    if 'missing' in combined and 'deleted' in combined:
        # an id is missing only if no shard deleted it (each shard reports the ids it owns) nor, deleting whole
        # documents, found passages of it (``documents``: the document ids a shard found)
        found = set(combined['deleted']) | set(combined.get('documents', ()))
        combined['missing'] = [i for i in combined['missing'] if i not in found]
    versions = {r['model_version'] for r in replies if 'model_version' in r}
    if len(versions) > 1:
        raise ValueError(f'shards serve different embedder versions: {sorted(versions)}')
    if versions:
        combined['model_version'] = versions.pop()
    if any('reembedding' in r for r in replies):
        combined['reembedding'] = any(r.get('reembedding') for r in replies)
    return combined


def shard_replies(results: Mapping[str, Mapping]) -> List[Mapping]:
    """The shard replies among a response's ``__results__`` (those with an integer ``shard``)."""
    return [r for r in results.values() if isinstance(r, Mapping) and isinstance(r.get('shard'), (int, float))]


def indexer_reply(results: Mapping[str, Mapping]) -> Dict:
    """The indexer's one reply in a response's ``__results__``: the combination of its shards' replies. Raises
    ``ValueError`` when no indexer replied (e.g. the endpoint is not the indexer's)."""
    replies = shard_replies(results)
    if not replies:
        raise ValueError(f'no indexer reply among {sorted(results)}')
    return combine(replies)
