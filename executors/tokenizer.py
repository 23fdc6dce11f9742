"""Tokenizer Executor: text -> unpadded ``input_ids`` for ``/index`` and ``/update`` (truncated to ``max_length``,
default 50 tokens, or ``passage_max_length`` for a literature passage, default 256: :func:`covidqa.docs.kind_of`;
the request's ``max_length`` for every document); the embedder pads per batch.

It binds only ``/index`` and ``/update`` (batches of documents: tokenizing them here overlaps with the embedder's
work on the previous batch). ``/search`` and ``/answer`` carry one or a few short questions whose tokenization
takes well under a millisecond, less than the gRPC hop through this process would cost, so jina's gateway sends
them straight to the embedder, which tokenizes them with the same code (:class:`covidqa.text.tokenization.TextTokenizer`)
and does these same checks (:func:`executors._common.prepare_texts`).
"""
from jina import Executor, requests

from covidqa.docs import KINDS, DocList, QADoc, kind_of
from covidqa.embedding.options import EmbedOptions
from covidqa.text.tokenization import TextTokenizer
from executors._common import BadRequest, prepare_texts, refuse_unknown_settings, settings_of
from executors.parameters import IndexParameters


@settings_of(EmbedOptions)
class Tokenizer(Executor):
    """``uses_with``: ``model`` (path or 'base'), ``max_length`` (:class:`covidqa.embedding.options.EmbedOptions`).

    It is the first Executor of ``/index`` and ``/update``, so it also checks their parameters
    (:mod:`executors.parameters`) and texts: a bad request is refused here with a message that names the problem,
    before any work is done.
    """

    def __init__(self, model: str = 'base', **kwargs):
        options = EmbedOptions.pop_from(kwargs)
        refuse_unknown_settings('Tokenizer', kwargs)
        super().__init__(**kwargs)
        self.tokenizer = TextTokenizer(model, max_length=options.max_length)
        self.passage_max_length = options.passage_max_length
        self.tokenizer.tokenizer  # load now: the Flow is ready only when its Executors are

    def _tokenize(self, endpoint: str, docs: DocList[QADoc], max_length) -> DocList[QADoc]:
        prepare_texts(docs, endpoint)
        for position, doc in enumerate(docs):
            if doc.kind is not None and doc.kind not in KINDS:
                raise BadRequest(f'{endpoint}: document {position} (id={doc.id}) has kind {doc.kind!r}; a kind is '
                                 f'one of {KINDS} (or left out: an entry with an answer is an FAQ entry)')
        if max_length is not None:  # the request's, for every document
            ids = self.tokenizer.encode(docs.text, max_length=max_length)
        else:  # a literature passage embedded whole (up to passage_max_length), an FAQ entry's question as a query
            ids = self.tokenizer.encode_documents(docs.text, [kind_of(d) for d in docs], self.passage_max_length)
        for doc, row in zip(docs, ids):
            doc.input_ids = row  # type: ignore[assignment]  # docarray validates the ndarray into NdArray
        return docs

    @requests(on=['/index', '/update'])
    def index(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        endpoint = '/index or /update'
        return self._tokenize(endpoint, docs, IndexParameters.parse(parameters, endpoint).max_length)
