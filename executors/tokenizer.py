"""Tokenizer Executor: text -> unpadded ``input_ids`` (truncated to ``max_length``); the embedder pads per batch."""
import uuid
from typing import Dict

from docarray.typing import ID
from jina import Executor, requests

from covidqa.docs import DocList, QADoc
from covidqa.tokenization import DEFAULT_MAX_LENGTH, TextTokenizer
from executors._common import BadRequest, check_texts
from executors.parameters import AnswerParameters, IndexParameters, SearchParameters, or_default


class Tokenizer(Executor):
    """``uses_with``: ``model`` (path or 'base'), ``max_length`` (default 50, as in finetuner's CovidQA example).

    It is the first Executor of the chain, so it also checks every request's parameters (:mod:`executors.parameters`)
    and texts: a bad request is refused here with a message that names the problem, before any work is done.
    """

    def __init__(self, model: str = 'base', max_length: int = DEFAULT_MAX_LENGTH, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = TextTokenizer(model, max_length=max_length)
        self.tokenizer.tokenizer  # load now: the Flow is ready only when its Executors are

    def _tokenize(self, endpoint: str, docs: DocList[QADoc], max_length, unique_ids: bool = True) -> DocList[QADoc]:
        """Checks the texts, gives documents without an id one and tokenizes. ``unique_ids``: refuse two documents
        with one id (queries: the shards' replies are joined by id, so their matches would be mixed up); ``/index``
        takes them (the later one replaces the earlier, as in two requests)."""
        check_texts(docs, endpoint)
        first: Dict[str, int] = {}
        for position, doc in enumerate(docs):
            if not doc.id:  # HTTP clients may leave ids out; give one here, once, before any shard sees it
                doc.id = ID(uuid.uuid4().hex)
            if unique_ids and doc.id in first:
                raise BadRequest(f'{endpoint}: documents {first[doc.id]} and {position} have the same id {doc.id!r}; '
                                 'give every query of a request its own id')
            first[doc.id] = position
        ids = self.tokenizer.encode(docs.text, max_length=or_default(max_length, self.tokenizer.max_length))
        for doc, row in zip(docs, ids):
            doc.input_ids = row  # type: ignore[assignment]  # docarray validates the ndarray into NdArray
        return docs

    @requests(on=['/index', '/update'])
    def index(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        endpoint = '/index or /update'
        return self._tokenize(endpoint, docs, IndexParameters.parse(parameters, endpoint).max_length,
                              unique_ids=False)

    @requests(on='/search')
    def search(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        return self._tokenize('/search', docs, SearchParameters.parse(parameters, '/search').max_length)

    @requests(on='/answer')
    def answer(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        return self._tokenize('/answer', docs, AnswerParameters.parse(parameters, '/answer').max_length)
