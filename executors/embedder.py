"""Embedder Executor: unpadded ``input_ids`` -> ``embedding`` (the [CLS] vector of MiniLM by default).

``/index`` and ``/update`` arrive tokenized (the tokenizer Executor runs first); ``/search`` and ``/answer`` come
straight from the gateway (a hop less: :mod:`executors.tokenizer`), so for them this Executor checks the texts,
gives ids and tokenizes (truncated to ``max_length``, default 50, or the request's ``max_length``).

It embeds with the embedder version the index holds (``ACTIVE`` in :mod:`covidqa.embedding.versions`), so queries and stored
documents always come from one model; each document records that version in ``model_version``.
"""
import threading

from jina import Executor, requests

from covidqa.docs import DocList, QADoc
from covidqa.embedding.encoder import Embedder as EmbeddingModel
from covidqa.embedding.options import EmbedOptions
from covidqa.embedding.versions import ModelVersions
from covidqa.models.loading import DEFAULT_EMBEDDER
from executors._common import BadRequest, prepare_texts, refuse_unknown_settings, settings_of
from executors.parameters import AnswerParameters, IndexParameters, SearchParameters, or_default


@settings_of(EmbedOptions)
class Embedder(Executor):
    """``uses_with``: ``model`` (version 0: default ``'shipped-embedder'``, the shipped ``[CLS]`` embedder; ``'base'``
    the packaged MiniLM), ``pooling`` ('cls' | 'mean'; the shipped embedder and the finetuner's versions take only
    their own),
    ``backend`` ('torch' | 'onnx' | 'onnx-int8'), ``num_threads``, ``versions_dir`` (embedder versions written by the
    feedback finetuner; default ``$COVIDQA_HOME/models/embedder``), and the settings of
    :class:`covidqa.embedding.options.EmbedOptions` (``max_length`` of queries, ``batch_size``)."""

    def __init__(self, model: str = DEFAULT_EMBEDDER, pooling: str = 'cls', backend: str = 'torch', num_threads: int = 0,
                 versions_dir: str = '', **kwargs):
        options = EmbedOptions.pop_from(kwargs)
        refuse_unknown_settings('Embedder', kwargs)
        super().__init__(**kwargs)
        self.max_length = options.max_length
        self.config = dict(pooling=pooling, backend=backend, batch_size=options.batch_size,
                           num_threads=num_threads or None)
        self.versions = ModelVersions(versions_dir or None, base_model=model)
        self._model_lock = threading.Lock()
        self._version, self._model = None, None
        self._current()  # load now: ready means ready

    def _current(self):
        """The embedding model of the ACTIVE version (reloaded when the indexer moves ACTIVE)."""
        version = self.versions.active()
        with self._model_lock:
            if version != self._version:
                self._model = EmbeddingModel(self.versions.model_path(version), **self.config).load()
                self._version = version
            return self._version, self._model

    def _embed(self, endpoint: str, docs: DocList[QADoc], batch_size) -> DocList[QADoc]:
        missing = [d.id for d in docs if d.input_ids is None]
        if missing:
            raise BadRequest(f'{endpoint}: documents {missing[:5]} have no input_ids; the tokenizer must run first')
        version, model = self._current()
        return self._embed_ids(docs, version, model, list(docs.input_ids), batch_size)

    def _embed_queries(self, endpoint: str, docs: DocList[QADoc], batch_size, max_length) -> DocList[QADoc]:
        """/search and /answer: check, give ids, tokenize here (the tokenizer Executor is not on their path)."""
        prepare_texts(docs, endpoint, unique_ids=True)
        version, model = self._current()
        ids = model.tokenizer.encode(docs.text, max_length=or_default(max_length, self.max_length))
        return self._embed_ids(docs, version, model, ids, batch_size)

    def _embed_ids(self, docs: DocList[QADoc], version, model, ids, batch_size) -> DocList[QADoc]:
        vectors = model.embed_ids(ids, batch_size=or_default(batch_size, self.config['batch_size']))
        for doc, vector in zip(docs, vectors):
            doc.embedding = vector
            doc.model_version = version
            doc.input_ids = None  # tokenized once, used once: keep messages small
        return docs

    @requests(on=['/index', '/update'])
    def index(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        endpoint = '/index or /update'
        return self._embed(endpoint, docs, IndexParameters.parse(parameters, endpoint).batch_size)

    @requests(on='/search')
    def search(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        params = SearchParameters.parse(parameters, '/search')
        return self._embed_queries('/search', docs, params.batch_size, params.max_length)

    @requests(on='/answer')
    def answer(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        params = AnswerParameters.parse(parameters, '/answer')
        return self._embed_queries('/answer', docs, params.batch_size, params.max_length)
