"""Embedder Executor: unpadded ``input_ids`` -> ``embedding`` (the [CLS] vector of MiniLM by default).

It embeds with the embedder version the index holds (``ACTIVE`` in :mod:`covidqa.versions`), so queries and stored
documents always come from one model; each document records that version in ``model_version``.
"""
import threading

from jina import Executor, requests

from covidqa.docs import DocList, QADoc
from covidqa.embedding import Embedder as EmbeddingModel
from covidqa.versions import ModelVersions
from executors._common import BadRequest
from executors.parameters import AnswerParameters, IndexParameters, SearchParameters, or_default


class Embedder(Executor):
    """``uses_with``: ``model`` (base model, default the packaged MiniLM), ``pooling`` ('cls' | 'mean'),
    ``backend`` ('torch' | 'onnx' | 'onnx-int8'), ``batch_size``, ``num_threads``, ``versions_dir`` (embedder versions written
    by the feedback finetuner; default ``$COVIDQA_HOME/models/embedder``)."""

    def __init__(self, model: str = 'base', pooling: str = 'cls', backend: str = 'torch', batch_size: int = 32,
                 num_threads: int = 0, versions_dir: str = '', **kwargs):
        super().__init__(**kwargs)
        self.config = dict(pooling=pooling, backend=backend, batch_size=batch_size, num_threads=num_threads or None)
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
        vectors = model.embed_ids(list(docs.input_ids), batch_size=or_default(batch_size, self.config['batch_size']))
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
        return self._embed('/search', docs, SearchParameters.parse(parameters, '/search').batch_size)

    @requests(on='/answer')
    def answer(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        return self._embed('/answer', docs, AnswerParameters.parse(parameters, '/answer').batch_size)
