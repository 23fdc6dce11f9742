"""MatchMerger: runs after the indexer's shards (``uses_after``) and merges their matches.

With ``shards: N`` every shard returns its own top-``limit``; the Flow concatenates them. This keeps the best
``limit`` per query (highest cosine first, one entry per id). Other endpoints pass through unchanged.
"""


from typing import Dict, Optional

from jina import Executor, requests

from covidqa.docs import DocList, MatchDoc, QADoc
from executors.parameters import AnswerParameters, SearchParameters, or_default


def merge_matches(docs: DocList[QADoc], limit: int) -> DocList[QADoc]:
    for doc in docs:
        best: Dict[Optional[str], MatchDoc] = {}
        for match in doc.matches:
            if match.id not in best or (match.score or 0) > (best[match.id].score or 0):
                best[match.id] = match
        ranked = sorted(best.values(), key=lambda m: -(m.score or 0.0))[:limit]
        doc.matches = DocList[MatchDoc](ranked)
    return docs


class MatchMerger(Executor):
    def __init__(self, limit: int = 10, **kwargs):  # ignores the indexer's uses_with it is handed
        super().__init__(**kwargs)
        self.default_limit = limit

    def _merge(self, docs: DocList[QADoc], docs_matrix, limit) -> DocList[QADoc]:
        if docs_matrix and len(docs_matrix) > 1:  # one DocList per shard, same queries in the same order
            docs = docs_matrix[0]
            for other in docs_matrix[1:]:
                for doc, twin in zip(docs, other):
                    doc.matches = DocList[MatchDoc](list(doc.matches) + list(twin.matches))
        return merge_matches(docs, or_default(limit, self.default_limit))

    @requests(on='/search')
    def search(self, docs: DocList[QADoc], parameters: dict, docs_matrix=None, **kwargs) -> DocList[QADoc]:
        return self._merge(docs, docs_matrix, SearchParameters.parse(parameters, '/search').limit)

    @requests(on='/answer')
    def answer(self, docs: DocList[QADoc], parameters: dict, docs_matrix=None, **kwargs) -> DocList[QADoc]:
        return self._merge(docs, docs_matrix, AnswerParameters.parse(parameters, '/answer').limit)

    @requests(on=['/index', '/update'])  # the indexer's other endpoints, exactly: the Flow checks the chain
    def pass_through(self, docs: DocList[QADoc], **kwargs) -> DocList[QADoc]:
        return docs

    @requests(on=['/delete', '/count'], request_schema=DocList[QADoc], response_schema=DocList[QADoc])
    def pass_results(self, docs, **kwargs):
        return docs
