"""Training rounds of the embedder from users' feedback: when to train, one background thread, cancelling, status.

No jina here; :mod:`executors.finetuner` translates requests into these calls. A round trains from version 0, the
shipped ``[CLS]`` embedder (or the newest version, ``init='target'``) on every label of the :class:`covidqa.feedback.store.FeedbackStore`
(:func:`covidqa.feedback.finetune.fit`), saves a new version atomically and moves ``TARGET`` of
:class:`covidqa.embedding.versions.ModelVersions` (the indexer then re-embeds and moves ``ACTIVE``).

Each round trains in a child process (:func:`covidqa.runtime.child.run_in_child` running :func:`train_round`) that exits
when the round ends, so the memory of training (torch, the model, the optimizer: ~1.5 GB) goes back to the system
and the Executor's process never imports torch. The labels go to it as a snapshot of the store's examples; its
training steps come back as progress for :meth:`FeedbackRounds.status`; :meth:`FeedbackRounds.close` terminates it.

Scheduling: one round at a time in one background thread. A round is requested after every ``train_every`` new
labels (``auto_train``) or explicitly (:meth:`FeedbackRounds.request`); requests that arrive while a round runs are
coalesced into the next round, so nothing learned is lost and floods do not pile up rounds. A rollback during a
round wins over that round's result. After a restart, labels the newest version was trained on are not trained
again (each version records ``labels_total``, the store's label clock, in its ``version.json``).

Example::

    rounds = FeedbackRounds(FeedbackStore('workspace/feedback'), ModelVersions(), train_every=8, epochs=1)
    rounds.labels_added()                 # after store.add_feedback(...): starts a round every 8 new labels
    generation = rounds.request('now')    # or start one explicitly
    rounds.wait_for(generation, timeout=600)
    rounds.status()['target_version']
    rounds.close()                        # cancels a running round
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from covidqa.embedding.versions import ModelVersions
from covidqa.feedback.options import FinetuneOptions
from covidqa.feedback.store import FeedbackStore, TrainingExample
from covidqa.jobs import FEEDBACK_ROUND
from covidqa.runtime.child import ChildCancelled, ChildError, run_in_child

log = logging.getLogger(__name__)
INITS = ('base', 'target')


class RoundsError(ValueError):
    """A request the rounds cannot serve (nothing to train on, unknown version); the message names the problem."""


class FeedbackRounds:
    """Background training rounds over ``store`` into ``versions``.

    :param train_every: request a round after this many new labels (positive integer).
    :param auto_train: request rounds by themselves (else only :meth:`request`).
    :param init: ``'base'`` (every round from the base model) or ``'target'`` (from the newest version).
    :param options: how each round trains (:class:`covidqa.feedback.options.FinetuneOptions`; ``**settings``
        override single ones, e.g. ``loss='cosine'``), with ``num_threads`` torch threads; handed to
        :func:`covidqa.feedback.finetune.fit`.
    :raises ValueError: for a ``train_every``, ``init`` or setting it cannot take, naming it.
    """

    def __init__(self, store: FeedbackStore, versions: ModelVersions, train_every: int = 8, auto_train: bool = True,
                 init: str = 'base', options: Optional[FinetuneOptions] = None, num_threads: Optional[int] = 1,
                 **settings: Any):
        if isinstance(train_every, bool) or not isinstance(train_every, int) or train_every < 1:
            raise ValueError(f'train_every must be a positive integer, got {train_every!r}')
        if init not in INITS:
            raise ValueError(f'init must be one of {INITS}, got {init!r}')
        self.store, self.versions = store, versions
        self.train_every, self.auto_train, self.init = train_every, auto_train, init
        self.options = (options or FinetuneOptions()).with_overrides(settings)
        self.num_threads = num_threads or None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._requested = 0  # generation of the newest round request
        self._finished = 0  # generation covered by the last finished round (success or not)
        self._running = False
        self._rollbacks = 0
        self._state: Dict[str, Any] = {
            'state': 'idle', 'round': 0, 'last_loss': None, 'last_version': None, 'last_error': None,
            'last_round_seconds': None, 'started_at': None, 'finished_at': None, 'step': 0, 'steps': 0,
            'reason': None, 'current_loss': None}
        self._trained_labels = self._labels_in_newest_version()
        self._worker = threading.Thread(target=self._work, name='feedback-rounds', daemon=True)
        self._worker.start()
        self.labels_added()  # labels that arrived before a restart and were never trained on

    # ---- requests ----------------------------------------------------------------------------------------------
    @property
    def labels_since_training(self) -> int:
        return self.store.total_labels - self._trained_labels

    def busy(self) -> bool:
        """A round runs or is requested."""
        with self._cond:
            return self._running or self._requested > self._finished

    def request(self, reason: str) -> int:
        """Request a round (coalesced with a pending one); returns its generation for :meth:`wait_for`.
        Raises :class:`RoundsError` when the store holds no label at all."""
        counts = self.store.counts()
        if counts['positive'] + counts['negative'] == 0:
            raise RoundsError('nothing to train on yet: no labels; label some matches with /feedback')
        return self._request(reason)

    def _request(self, reason: str) -> int:
        with self._cond:
            self._requested += 1
            self._state['reason'] = reason
            self._cond.notify_all()
            return self._requested

    def labels_added(self) -> bool:
        """Call after labels were added: requests a round once ``train_every`` labels are untrained (and none is
        pending). Returns whether it requested one."""
        if not self.auto_train:
            return False
        with self._cond:
            pending = self._requested > self._finished
        if pending or self.labels_since_training < self.train_every:
            return False
        self._request(f'{self.train_every} new labels')
        return True

    def wait_for(self, generation: int, timeout: float) -> bool:
        """Wait until the round of ``generation`` finished (True) or ``timeout`` seconds passed (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._finished < generation:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(timeout=min(left, 1.0))
        return True

    def rollback(self, version: int) -> int:
        """Move ``TARGET`` back to an existing ``version`` (wins over a round running now); returns the previous
        target. Raises :class:`RoundsError` for a version that does not exist."""
        available = self.versions.versions()
        if version not in available:
            raise RoundsError(f'embedder version {version} does not exist; available versions: {available}')
        with self._cond:
            previous = self.versions.target()
            self._rollbacks += 1
            self.versions.set_target(version)
        return previous

    # ---- the training thread -----------------------------------------------------------------------------------
    def _labels_in_newest_version(self) -> int:
        """Labels (store clock) the newest trained version has seen, so that a restart neither retrains what is
        trained nor undoes a rollback; 0 when no version was trained from this store."""
        seen = [0]
        for version in self.versions.versions():
            try:
                seen.append(int(self.versions.meta(version).get('labels_total', 0)))
            except Exception:  # an unreadable version.json: that version just does not count
                pass
        return min(max(seen), self.store.total_labels)

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while self._requested <= self._finished and not self._stop.is_set():
                    self._cond.wait(timeout=1.0)
                if self._stop.is_set():
                    return
                generation, rollbacks = self._requested, self._rollbacks
                self._running = True
                self._state.update(state='training', started_at=time.time(), step=0, steps=0, last_error=None)
                self._state['round'] += 1
            outcome = self._round(rollbacks)
            if outcome is None:  # cancelled by close()
                return
            with self._cond:
                self._state.update(finished_at=time.time(), **outcome)
                self._finished = generation
                self._running = False
                self._cond.notify_all()
            self.labels_added()  # labels that arrived during the round

    def _round(self, rollbacks: int) -> Optional[dict]:
        labels_total = self.store.total_labels  # read first: labels added meanwhile are trained on, counted later
        counts = self.store.counts()
        examples = [{'query': e.query, 'positives': e.positives, 'negatives': e.negatives}
                    for e in self.store.examples()]
        meta = {'labels_total': labels_total, 'positive': counts['positive'], 'negative': counts['negative'],
                'labeled_queries': counts['queries']}
        try:
            result = run_in_child(FEEDBACK_ROUND,
                                  dict(examples=examples, versions_dir=str(self.versions.root),
                                       base_model=str(self.versions.base_model), init=self.init, meta=meta,
                                       num_threads=self.num_threads, **self.options.model_dump()),
                                  progress_arg='callback', on_progress=self._progress, stop_event=self._stop)
        except ChildCancelled:
            return None
        except ChildError as exc:
            if exc.is_a('ValueError'):  # nothing usable to learn from yet (e.g. no accepted match for mnr)
                with self._cond:
                    self._trained_labels = labels_total
                return dict(state='waiting', last_error=exc.message)
            log.error('training round failed: %s', exc)  # keep serving; the labels stay for the next round
            return dict(state='failed', last_error=str(exc))
        except Exception as exc:  # the child could not even start
            log.error('training round failed: %r', exc)
            return dict(state='failed', last_error=f'{type(exc).__name__}: {exc}')
        with self._cond:
            if self._rollbacks == rollbacks:  # a rollback during the round wins over its result
                self.versions.set_target(result['version'])
            self._trained_labels = labels_total
        log.info('round done: embedder v%d, loss %.4f, %d queries, %.0fs', result['version'], result['final_loss'],
                 result['examples'], result['seconds'])
        return dict(state='idle', last_loss=result['final_loss'], last_version=result['version'],
                    last_round_seconds=round(result['seconds'], 1))

    def _progress(self, info: dict) -> None:
        with self._cond:
            self._state.update(step=info['step'], steps=info['steps'], current_loss=info['loss'])

    # ---- status ------------------------------------------------------------------------------------------------
    def status(self) -> dict:
        """Versions (ACTIVE/TARGET/available), label counts, and the state of the rounds (a JSON-able dict)."""
        counts = self.store.counts()
        with self._cond:
            training = dict(self._state)
            pending = self._requested > self._finished and not self._running
        return {
            'active_version': self.versions.active(),
            'target_version': self.versions.target(),
            'versions': self.versions.versions(),
            'positive': counts['positive'],
            'negative': counts['negative'],
            'labeled_queries': counts['queries'],
            'labels_total': counts['events'],
            'labels_since_training': self.labels_since_training,
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
            'loss': self.options.loss,
        }

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def close(self, timeout: float = 30) -> None:
        """Cancel a running round (its child process is terminated, its partial model not saved) and stop the
        thread; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._worker.join(timeout=timeout)


def train_round(examples: List[dict], versions_dir: str, base_model: str, init: str, meta: dict,
                callback: Optional[Callable[[dict], None]] = None, **train_config) -> dict:
    """One round, in the child process (:func:`covidqa.runtime.child.run_in_child`): train on ``examples`` (dicts with
    ``query``, ``positives``, ``negatives``) from version 0 or ``TARGET`` (``init``), save a new version under
    ``versions_dir`` with ``meta`` in its ``version.json`` (``TARGET`` is not moved: the parent does that, unless
    a rollback came first). ``callback`` gets every training step. Returns ``{'version', 'final_loss',
    'examples', 'seconds'}``; ``ValueError`` when the labels hold nothing to learn from."""
    from covidqa.feedback.finetune import fit

    data = [TrainingExample(e['query'], list(e['positives']), list(e['negatives'])) for e in examples]
    result = fit(data, versions=ModelVersions(versions_dir, base_model=base_model), init=init, set_target=False,
                 callback=callback, meta=meta, **train_config)
    return {'version': result.version, 'final_loss': result.final_loss, 'examples': result.examples,
            'seconds': result.seconds}
