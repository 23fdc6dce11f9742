"""Tokenizer Executor: text -> unpadded ``input_ids`` (truncated to ``max_length``); the embedder pads per batch."""
import uuid

from jina import Executor, requests

from covidqa.docs import DocList, QADoc
from covidqa.tokenization import DEFAULT_MAX_LENGTH, TextTokenizer
from executors._common import check_parameters, check_texts, positive_int


class Tokenizer(Executor):
    """``uses_with``: ``model`` (path or 'base'), ``max_length`` (default 50, as in finetuner's CovidQA example).

    It is the first Executor of the chain, so it also checks every request's parameters and texts: a bad request is
    refused here with a message that names the problem, before any work is done.
    """

    def __init__(self, model: str = 'base', max_length: int = DEFAULT_MAX_LENGTH, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = TextTokenizer(model, max_length=max_length)
        self.tokenizer.tokenizer  # load now: the Flow is ready only when its Executors are

    def _tokenize(self, endpoint: str, docs: DocList[QADoc], parameters: dict) -> DocList[QADoc]:
        params = check_parameters(endpoint, parameters)
        check_texts(docs, endpoint)
        max_length = positive_int(params, 'max_length', self.tokenizer.max_length, maximum=512)
        for doc in docs:
            if not doc.id:  # HTTP clients may leave ids out; give one here, once, before any shard sees it
                doc.id = uuid.uuid4().hex
        for doc, ids in zip(docs, self.tokenizer.encode(docs.text, max_length=max_length)):
            doc.input_ids = ids
        return docs

    @requests(on='/index')
    def index(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        return self._tokenize('/index', docs, parameters)

    @requests(on='/update')
    def update(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        return self._tokenize('/update', docs, parameters)

    @requests(on='/search')
    def search(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        return self._tokenize('/search', docs, parameters)

    @requests(on='/answer')
    def answer(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        return self._tokenize('/answer', docs, parameters)
