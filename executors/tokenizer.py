"""Tokenizer Executor: text -> unpadded ``input_ids`` (truncated to ``max_length``) for ``/index`` and ``/update``;
the embedder pads per batch.

It binds only ``/index`` and ``/update`` (batches of documents: tokenizing them here overlaps with the embedder's
work on the previous batch). ``/search`` and ``/answer`` carry one or a few short questions whose tokenization
takes well under a millisecond, less than the gRPC hop through this process would cost, so jina's gateway sends
them straight to the embedder, which tokenizes them with the same code (:class:`covidqa.text.tokenization.TextTokenizer`)
and does these same checks (:func:`executors._common.prepare_texts`).
"""
from jina import Executor, requests

from covidqa.docs import DocList, QADoc
from covidqa.embedding.options import EmbedOptions
from covidqa.text.tokenization import TextTokenizer
from executors._common import prepare_texts, refuse_unknown_settings, settings_of
from executors.parameters import IndexParameters, or_default


@settings_of(EmbedOptions)
class Tokenizer(Executor):
    """``uses_with``: ``model`` (path or 'base'), ``max_length`` (:class:`covidqa.embedding.options.EmbedOptions`).

    It is the first Executor of ``/index`` and ``/update``, so it also checks their parameters
    (:mod:`executors.parameters`) and texts: a bad request is refused here with a message that names the problem,
    before any work is done.
    """

    def __init__(self, model: str = 'base', **kwargs):
        max_length = EmbedOptions.pop_from(kwargs).max_length
        refuse_unknown_settings('Tokenizer', kwargs)
        super().__init__(**kwargs)
        self.tokenizer = TextTokenizer(model, max_length=max_length)
        self.tokenizer.tokenizer  # load now: the Flow is ready only when its Executors are

    def _tokenize(self, endpoint: str, docs: DocList[QADoc], max_length) -> DocList[QADoc]:
        prepare_texts(docs, endpoint)
        ids = self.tokenizer.encode(docs.text, max_length=or_default(max_length, self.tokenizer.max_length))
        for doc, row in zip(docs, ids):
            doc.input_ids = row  # type: ignore[assignment]  # docarray validates the ndarray into NdArray
        return docs

    @requests(on=['/index', '/update'])
    def index(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        endpoint = '/index or /update'
        return self._tokenize(endpoint, docs, IndexParameters.parse(parameters, endpoint).max_length)
