"""Finetuner Executor: learns from users' feedback on search results, live, while search keeps being served.

It is the last Executor of the chain (tokenizer -> embedder -> indexer -> reader -> finetuner) and binds no default
endpoint: jina's gateway sends a request only to the Executors that bind its endpoint, so ``/search``, ``/answer``,
``/index``, ``/count`` ... never reach this process (one gRPC hop less). What ``/search`` showed for which query id
(so feedback can be checked) is written by the gateway, from each ``/search`` reply before it leaves, into the search
log next to the label store (``$COVIDQA_HOME/feedback/searches.jsonl``, :mod:`covidqa.feedback.search_log`); this Executor
reads it from there. Endpoints:

- ``/feedback``: query docs (the ids of searched queries) whose ``matches`` carry ``label`` = ``'accepted'`` or
  ``'rejected'`` (unlabeled matches are ignored). Refused with a message naming the problem: no documents, a query
  never searched, no label at all, an invalid label, a document id not shown for that query. Accepted labels are
  fsync'ed to the label store (:mod:`covidqa.feedback.store`) before the reply; a training round starts after every
  ``train_every`` new labels.
- ``/train``: start a round now (``{'wait': true, 'timeout': s}`` waits for it to finish).
- ``/save_model``: make sure every label gets into a saved model version (starts a round if some are not trained
  on yet; ``{'wait': true}`` waits for it), and export the labels as a training set (CSV) next to the store.
- ``/rollback``: ``{'version': N}`` moves ``TARGET`` back to an existing version N (0 = the shipped ``[CLS]``
  embedder unless ``model`` names another).
- ``/status``: model versions (ACTIVE/TARGET/available), label counts, training state, last loss.

Endpoint results are dicts: clients read them in ``response.parameters['__results__'][<executor name>]``.
Only ``{'wait': true}`` blocks; give the Executor ``allow_concurrent: true`` in flow.yml (it is thread-safe) so that
such a wait never holds up ``/status`` or ``/feedback``.

The rounds themselves (when to train, the background thread, coalescing, cancelling, status) are
:class:`covidqa.feedback.rounds.FeedbackRounds`: a round trains on every label, saves a new version atomically and
moves ``TARGET``; the indexer then re-embeds the stored documents and moves ``ACTIVE``, and the embedder follows
(see :mod:`covidqa.embedding.versions`). Parameters: :mod:`executors.parameters`.
"""
from typing import Dict, List, Tuple

from jina import Executor, requests

from covidqa.docs import DocList, QADoc
from covidqa.embedding.versions import ModelVersions
from covidqa.feedback.options import FinetuneOptions
from covidqa.feedback.rounds import FeedbackRounds, RoundsError
from covidqa.feedback.store import FeedbackError, FeedbackStore
from covidqa.models.loading import DEFAULT_EMBEDDER
from covidqa.paths import feedback_dir
from executors._common import BadRequest, refuse_unknown_settings, settings_of
from executors.parameters import NoParameters, RollbackParameters, RoundParameters, or_default

DEFAULT_WAIT_TIMEOUT_S = 600
# Endpoints that answer a dict (clients read it in response.parameters['__results__']): no return annotation, the
# schemas given to jina
RESULTS = dict(request_schema=DocList[QADoc], response_schema=DocList[QADoc])


@settings_of(FinetuneOptions)
class Finetuner(Executor):
    """``uses_with``: ``model`` (version 0, where every round starts: default ``'shipped-embedder'``), ``store_dir`` (label store, default
    ``$COVIDQA_HOME/feedback``), ``versions_dir`` (default ``$COVIDQA_HOME/models/embedder``), ``train_every``
    (start a round after this many new labels, default 8), ``auto_train`` (default true), ``init`` ('base' | 'target'),
    ``num_threads`` (torch threads for training, default 1 so that search keeps a core) and the settings of
    :class:`covidqa.feedback.options.FinetuneOptions` (``loss``, ``epochs``, ``lr``, ``batch_size``, ...).
    The gateway logs searches into ``$COVIDQA_HOME/feedback``: a ``store_dir`` elsewhere sees no searches."""

    def __init__(self, model: str = DEFAULT_EMBEDDER, store_dir: str = '', versions_dir: str = '', train_every: int = 8,
                 auto_train: bool = True, init: str = 'base', num_threads: int = 1, **kwargs):
        options = FinetuneOptions.pop_from(kwargs)
        refuse_unknown_settings('Finetuner', kwargs)
        super().__init__(**kwargs)
        self.store = FeedbackStore(store_dir or feedback_dir(), writes_searches=False)  # the gateway writes them
        if self.store.directory.resolve() != feedback_dir().resolve():
            self.logger.warning(f'store_dir {self.store.directory} is not {feedback_dir()}, where the gateway logs '
                                f'searches: feedback will be refused as never searched unless searches are '
                                f'logged there')
        self.versions = ModelVersions(versions_dir or None, base_model=model)
        self.rounds = FeedbackRounds(self.store, self.versions, train_every=train_every, auto_train=auto_train,
                                     init=init, options=options, num_threads=num_threads)

    @requests(on='/feedback', **RESULTS)
    def feedback(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        NoParameters.parse(parameters, '/feedback')
        if len(docs) == 0:
            raise BadRequest('/feedback: no documents: send the searched query docs (same ids as in /search) with '
                             "match.label set to 'accepted' or 'rejected'")
        batches: List[Tuple[str, Dict[str, str]]] = []
        for position, doc in enumerate(docs):
            labels: Dict[str, str] = {}  # document id (as the store compares them: str) -> label
            for match in doc.matches:
                if match.label is None:
                    continue
                if str(match.id) in labels and labels[str(match.id)] != match.label:
                    raise BadRequest(f'/feedback: query id={doc.id!r}: document id={match.id!r} is labeled both '
                                     f'{labels[str(match.id)]!r} and {match.label!r}')
                labels[str(match.id)] = match.label
            query_id = doc.id or ''  # no id: the store refuses it by name
            try:
                batches.append((query_id, self.store.validate(query_id, labels)))
            except FeedbackError as exc:
                raise BadRequest(f'/feedback: document {position}: {exc}') from None
        accepted = rejected = 0
        for query_id, labels in batches:
            added = self.store.add_feedback(query_id, labels)
            accepted += added['accepted']
            rejected += added['rejected']
        scheduled = self.rounds.labels_added()
        counts = self.store.counts()
        return {'accepted': accepted, 'rejected': rejected, 'queries': len(batches),
                'positive': counts['positive'], 'negative': counts['negative'],
                'labels_since_training': self.rounds.labels_since_training,
                'training_scheduled': scheduled or self.rounds.busy()}

    def _start_round(self, endpoint: str, params: RoundParameters, reason: str) -> dict:
        try:
            generation = self.rounds.request(reason)
        except RoundsError as exc:
            raise BadRequest(f'{endpoint}: {exc}') from None
        if not or_default(params.wait, False):
            return {'started': True, 'round_request': generation, **self.rounds.status()}
        done = self.rounds.wait_for(generation, or_default(params.timeout, DEFAULT_WAIT_TIMEOUT_S))
        return {'started': True, 'finished': done, **self.rounds.status()}

    @requests(on='/train', **RESULTS)
    def train(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        """Start a round now (``{'wait': true, 'timeout': s}`` waits for it)."""
        return self._start_round('/train', RoundParameters.parse(parameters, '/train'), 'requested by /train')

    @requests(on='/save_model', **RESULTS)
    def save_model(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        """Every label into a saved version: starts a round if some labels are not trained on yet (``{'wait':
        true}`` waits for it; by default it answers at once and the round's end shows in /status), and exports the
        labels to ``<store>/training_set.csv``."""
        params = RoundParameters.parse(parameters, '/save_model')
        export = self.store.directory / 'training_set.csv'
        rows = self.store.export(export)
        if self.rounds.labels_since_training > 0 or self.rounds.busy():
            out = self._start_round('/save_model', params, 'save model')
        else:
            out = {'started': False, 'finished': True, **self.rounds.status()}
        out.setdefault('finished', False)
        target = self.versions.target()
        out.update(saved_version=target, saved_path=str(self.versions.model_path(target)),
                   training_set=str(export), training_set_rows=rows)
        return out

    @requests(on='/rollback', **RESULTS)
    def rollback(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        params = RollbackParameters.parse(parameters, '/rollback')
        if params.version is None:
            raise BadRequest(f"/rollback: parameter 'version' is required; available versions: "
                             f'{self.versions.versions()}')
        try:
            previous = self.rounds.rollback(params.version)
        except RoundsError as exc:
            raise BadRequest(f'/rollback: {exc}') from None
        return {'rolled_back_from': previous, **self.rounds.status()}

    @requests(on='/status', **RESULTS)
    def status(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        NoParameters.parse(parameters, '/status')
        return self.rounds.status()

    def close(self) -> None:
        if self.rounds.closed:
            return  # closed already
        self.rounds.close()
        super().close()
