"""Finetuner Executor: learns from users' feedback on search results, live, while search keeps being served.

It is the last Executor of the chain (tokenizer -> embedder -> indexer -> reader -> finetuner). Endpoints:

- ``/search``: records which matches were shown for which query id (so feedback can be checked); docs pass through.
- ``/feedback``: query docs (the ids of searched queries) whose ``matches`` carry ``label`` = ``'accepted'`` or
  ``'rejected'`` (unlabeled matches are ignored). Refused with a message naming the problem: no documents, a query
  never searched, no label at all, an invalid label, a document id not shown for that query. Accepted labels are
  fsync'ed to the label store (:mod:`covidqa.feedback`) before the reply; a training round starts after every
  ``train_every`` new labels.
- ``/train``: start a round now (``{'wait': true, 'timeout': s}`` waits for it to finish).
- ``/save_model``: make sure every label gets into a saved model version (starts a round if some are not trained
  on yet; ``{'wait': true}`` waits for it), and export the labels as a training set (CSV) next to the store.
- ``/rollback``: ``{'version': N}`` moves ``TARGET`` back to an existing version N (0 = the base model).
- ``/status``: model versions (ACTIVE/TARGET/available), label counts, training state, last loss.

Endpoint results are dicts: clients read them in ``response.parameters['__results__'][<executor name>]``.
Only ``{'wait': true}`` blocks; give the Executor ``allow_concurrent: true`` in flow.yml (it is thread-safe) so that
such a wait never holds up ``/search``, which passes through it.

Training runs in one background thread, one round at a time; requests that arrive meanwhile (labels, /train) are
coalesced into the next round, so nothing learned is lost and floods do not pile up rounds. A round trains from the
base model on every label (:func:`covidqa.finetune.fit`), saves a new version atomically and moves ``TARGET``; the
indexer then re-embeds the stored documents and moves ``ACTIVE``, and the embedder follows (see
:mod:`covidqa.versions`).
"""
import threading
import time

from jina import Executor, requests

from covidqa.docs import DocList, QADoc
from covidqa.feedback import FeedbackError, FeedbackStore
from covidqa.finetune import DEFAULTS, TrainingCancelled, fit
from covidqa.paths import feedback_dir
from covidqa.versions import ModelVersions
from executors._common import BadRequest, check_parameters

MAX_WAIT_S = 3600


def _number(parameters: dict, key: str, default, minimum=0, maximum=MAX_WAIT_S, integer=False):
    value = parameters.get(key, default)
    if isinstance(value, float) and integer and value.is_integer():
        value = int(value)  # JSON/protobuf numbers arrive as floats
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not minimum <= value <= maximum:
        kind = 'an integer' if integer else 'a number'
        raise BadRequest(f'parameter {key!r} must be {kind} between {minimum} and {maximum}, got {value!r}')
    return value


def _flag(parameters: dict, key: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f'parameter {key!r} must be true or false, got {value!r}')
    return value


class Finetuner(Executor):
    """``uses_with``: ``model`` (base model of version 0), ``store_dir`` (label store, default
    ``$COVIDQA_HOME/feedback``), ``versions_dir`` (default ``$COVIDQA_HOME/models/embedder``), ``train_every``
    (start a round after this many new labels, default 8), ``auto_train`` (default true), training knobs ``loss``
    ('mnr' | 'cosine'), ``epochs``, ``lr``, ``batch_size``, ``max_length``, ``pooling``, ``init`` ('base' |
    'target'), and ``num_threads`` (torch threads for training, default 1 so that search keeps a core)."""

    def __init__(self, model: str = 'base', store_dir: str = '', versions_dir: str = '', train_every: int = 8,
                 auto_train: bool = True, loss: str = DEFAULTS['loss'], epochs: int = DEFAULTS['epochs'],
                 lr: float = DEFAULTS['lr'], batch_size: int = DEFAULTS['batch_size'],
                 max_length: int = DEFAULTS['max_length'], pooling: str = DEFAULTS['pooling'], init: str = 'base',
                 num_threads: int = 1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(train_every, int) or train_every < 1:
            raise ValueError(f'train_every must be a positive integer, got {train_every!r}')
        if loss not in ('mnr', 'cosine'):
            raise ValueError(f"loss must be 'mnr' or 'cosine', got {loss!r}")
        if init not in ('base', 'target'):
            raise ValueError(f"init must be 'base' or 'target', got {init!r}")
        self.store = FeedbackStore(store_dir or feedback_dir())
        self.versions = ModelVersions(versions_dir or None, base_model=model)
        self.train_every = train_every
        self.auto_train = auto_train
        self.init = init
        self.train_config = dict(loss=loss, epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length,
                                 pooling=pooling, num_threads=num_threads or None)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._requested = 0  # generation of the newest round request
        self._finished = 0  # generation covered by the last finished round (success or not)
        self._running = False
        self._state = {'state': 'idle', 'round': 0, 'last_loss': None, 'last_version': None, 'last_error': None,
                       'last_round_seconds': None, 'started_at': None, 'finished_at': None, 'step': 0, 'steps': 0,
                       'reason': None}
        self._rollbacks = 0
        self._trained_labels = self._labels_in_target()
        self._worker = threading.Thread(target=self._work, name='finetuner-training', daemon=True)
        self._worker.start()
        self._maybe_auto_round()  # labels that arrived before a restart and were never trained on

    # ---- training thread ---------------------------------------------------------------------------------------
    def _labels_in_target(self) -> int:
        """Labels (store clock) the newest trained version has seen, so that a restart neither retrains what is
        trained nor undoes a rollback; 0 when no version was trained from this store."""
        seen = [0]
        for version in self.versions.versions():
            try:
                seen.append(int(self.versions.meta(version).get('labels_total', 0)))
            except Exception:  # an unreadable version.json: that version just does not count
                pass
        return min(max(seen), self.store.total_labels)

    def _request_round(self, reason: str) -> int:
        with self._cond:
            self._requested += 1
            self._state['reason'] = reason
            self._cond.notify_all()
            return self._requested

    def _maybe_auto_round(self) -> bool:
        if not self.auto_train:
            return False
        with self._cond:
            pending_request = self._requested > self._finished
        if pending_request or self.store.total_labels - self._trained_labels < self.train_every:
            return False
        self._request_round(f'{self.train_every} new labels')
        return True

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while self._requested <= self._finished and not self._stop.is_set():
                    self._cond.wait(timeout=1.0)
                if self._stop.is_set():
                    return
                generation = self._requested
                rollbacks = self._rollbacks
                self._running = True
                self._state.update(state='training', started_at=time.time(), step=0, steps=0, last_error=None)
                self._state['round'] += 1
            labels_total = self.store.total_labels
            counts = self.store.counts()
            outcome = {}
            try:
                result = fit(self.store, versions=self.versions, init=self.init, set_target=False,
                             callback=self._progress, stop_event=self._stop,
                             meta={'labels_total': labels_total, 'positive': counts['positive'],
                                   'negative': counts['negative'], 'labeled_queries': counts['queries']},
                             **self.train_config)
                with self._cond:
                    if self._rollbacks == rollbacks:  # a rollback during the round wins over its result
                        self.versions.set_target(result.version)
                    self._trained_labels = labels_total
                outcome = dict(state='idle', last_loss=result.final_loss, last_version=result.version,
                               last_round_seconds=round(result.seconds, 1))
                self.logger.info(f'round done: embedder v{result.version}, loss {result.final_loss:.4f}, '
                                 f'{result.examples} queries, {result.seconds:.0f}s')
            except TrainingCancelled:
                return
            except ValueError as exc:  # nothing usable to learn from yet (e.g. no accepted match for mnr)
                with self._cond:
                    self._trained_labels = labels_total
                outcome = dict(state='waiting', last_error=str(exc))
            except Exception as exc:  # keep serving; the labels stay in the store for the next round
                self.logger.error(f'training round failed: {exc!r}')
                outcome = dict(state='failed', last_error=f'{type(exc).__name__}: {exc}')
            with self._cond:
                self._state.update(finished_at=time.time(), **outcome)
                self._finished = generation
                self._running = False
                self._cond.notify_all()
            self._maybe_auto_round()  # labels that arrived during the round

    def _progress(self, info: dict) -> None:
        with self._cond:
            self._state.update(step=info['step'], steps=info['steps'], current_loss=info['loss'])

    def _wait_for(self, generation: int, timeout: float) -> bool:
        deadline = time.time() + timeout
        with self._cond:
            while self._finished < generation:
                left = deadline - time.time()
                if left <= 0:
                    return False
                self._cond.wait(timeout=min(left, 1.0))
        return True

    # ---- endpoints ---------------------------------------------------------------------------------------------
    @requests
    def pass_through(self, docs: DocList[QADoc], **kwargs) -> DocList[QADoc]:
        """Endpoints of the other Executors (/index, /answer, /count, ...) pass through unchanged."""
        return None

    @requests(on='/search')
    def search(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        """Remember the matches shown for every query (docs pass through unchanged)."""
        check_parameters('/search', parameters)
        for doc in docs:
            if doc.id and len(doc.matches):
                self.store.record_search(doc.id, doc.text, [{'id': m.id, 'text': m.text} for m in doc.matches],
                                         model_version=doc.model_version)
        return None

    @requests(on='/feedback')
    def feedback(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        check_parameters('/feedback', parameters)
        if len(docs) == 0:
            raise BadRequest('/feedback: no documents: send the searched query docs (same ids as in /search) with '
                             "match.label set to 'accepted' or 'rejected'")
        batches = []
        for position, doc in enumerate(docs):
            labels = {}
            for match in doc.matches:
                if match.label is None:
                    continue
                if match.id in labels and labels[match.id] != match.label:
                    raise BadRequest(f'/feedback: query id={doc.id!r}: document id={match.id!r} is labeled both '
                                     f'{labels[match.id]!r} and {match.label!r}')
                labels[match.id] = match.label
            try:
                batches.append((doc.id, self.store.validate(doc.id, labels)))
            except FeedbackError as exc:
                raise BadRequest(f'/feedback: document {position}: {exc}') from None
        accepted = rejected = 0
        for query_id, labels in batches:
            added = self.store.add_feedback(query_id, labels)
            accepted += added['accepted']
            rejected += added['rejected']
        scheduled = self._maybe_auto_round()
        counts = self.store.counts()
        return {'accepted': accepted, 'rejected': rejected, 'queries': len(batches),
                'positive': counts['positive'], 'negative': counts['negative'],
                'labels_since_training': self.store.total_labels - self._trained_labels,
                'training_scheduled': scheduled or self._busy()}

    def _busy(self) -> bool:
        with self._cond:
            return self._running or self._requested > self._finished

    def _start_round(self, endpoint: str, parameters: dict, reason: str, wait_default: bool) -> dict:
        params = check_parameters(endpoint, parameters, extra_known=('wait', 'timeout'))
        wait = _flag(params, 'wait', wait_default)
        timeout = _number(params, 'timeout', 600, minimum=1)
        if self.store.counts()['positive'] + self.store.counts()['negative'] == 0:
            raise BadRequest(f'{endpoint}: nothing to train on yet: no labels; label some matches with /feedback')
        generation = self._request_round(reason)
        if not wait:
            return {'started': True, 'round_request': generation, **self._status()}
        done = self._wait_for(generation, timeout)
        return {'started': True, 'finished': done, **self._status()}

    @requests(on='/train')
    def train(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        return self._start_round('/train', parameters, 'requested by /train', wait_default=False)

    @requests(on='/save_model')
    def save_model(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        """Every label into a saved version: starts a round if some labels are not trained on yet (``{'wait':
        true}`` waits for it; by default it answers at once and the round's end shows in /status), and exports the
        labels to ``<store>/training_set.csv``."""
        params = check_parameters('/save_model', parameters, extra_known=('wait', 'timeout'))
        export = self.store.directory / 'training_set.csv'
        rows = self.store.export(export)
        if self.store.total_labels > self._trained_labels or self._busy():
            out = self._start_round('/save_model', params, 'save model', wait_default=False)
        else:
            out = {'started': False, 'finished': True, **self._status()}
        out.setdefault('finished', False)
        target = self.versions.target()
        out.update(saved_version=target, saved_path=str(self.versions.model_path(target)),
                   training_set=str(export), training_set_rows=rows)
        return out

    @requests(on='/rollback')
    def rollback(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        params = check_parameters('/rollback', parameters, extra_known=('version',))
        if 'version' not in params:
            raise BadRequest(f"/rollback: parameter 'version' is required; available versions: "
                             f'{self.versions.versions()}')
        version = _number(params, 'version', None, minimum=0, maximum=10 ** 6, integer=True)
        available = self.versions.versions()
        if version not in available:
            raise BadRequest(f'/rollback: embedder version {version} does not exist; available versions: {available}')
        with self._cond:
            previous = self.versions.target()
            self._rollbacks += 1
            self.versions.set_target(version)
        return {'rolled_back_from': previous, **self._status()}

    @requests(on='/status')
    def status(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        check_parameters('/status', parameters)
        return self._status()

    def _status(self) -> dict:
        counts = self.store.counts()
        with self._cond:
            training = dict(self._state)
            pending = self._requested > self._finished and not self._running
        since = self.store.total_labels - self._trained_labels
        return {
            'active_version': self.versions.active(),
            'target_version': self.versions.target(),
            'versions': self.versions.versions(),
            'positive': counts['positive'],
            'negative': counts['negative'],
            'labeled_queries': counts['queries'],
            'labels_total': counts['events'],
            'labels_since_training': since,
            'train_every': self.train_every,
            'auto_train': self.auto_train,
            'training': training['state'],
            'round_pending': pending,
            'round': training['round'],
            'progress': {'step': training['step'], 'steps': training['steps']},
            'last_loss': training['last_loss'],
            'last_version': training['last_version'],
            'last_error': training['last_error'],
            'last_round_seconds': training['last_round_seconds'],
            'loss': self.train_config['loss'],
        }

    def close(self) -> None:
        if self._stop.is_set():
            return  # closed already
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._worker.join(timeout=30)
        super().close()
