"""Reader Executor: extractive answers over the search matches, plus train/eval/test of the reader model.

Endpoints:

- ``/answer``: for each query document (``text`` = the question) the reader reads its ``matches`` (context =
  ``match.answer`` when set, else ``match.text``; ``context_id`` = ``match.id``) and replies with one
  :class:`covidqa.docs.AnswerReply` a question: its ``answers`` (:class:`covidqa.docs.AnswerSpan`, best first,
  ``context`` filled, ``context[start:end] == answer``, the source's ``title`` (its title, or the FAQ question),
  ``source``, ``url`` and ``kind``; ``score`` the calibrated probability that the answer is right). With
  ``collection: auto`` (the default) it reads a question's FAQ matches first and answers from them when it trusts
  one, else its literature matches (:func:`covidqa.reader.faq_first.read_faq_first`). When the reader trusts
  none (best below ``confidence_threshold``), the no-answer span comes first (``no_answer=True``,
  ``answer=None``, ``start=end=-1``), followed by the best of the untrusted; a question without matches gets it
  alone. ``matches`` (without training fields) only with ``return_matches``. Parameters: the request settings of
  :class:`covidqa.reader.options.ReadOptions` (``top_k``, ``confidence_threshold``, ...:
  :data:`covidqa.reader.options.REQUEST_OPTIONS`), ``context_field`` (``'auto'`` | ``'answer'`` | ``'text'``) and
  ``return_matches``; the Flow-wide ``limit``/``max_length`` belong to other Executors.
- ``/answer_feedback``: a person's verdict on one answer shown (the document: the answered question's id;
  parameters ``answer`` (its position), ``verdict`` ``'right'``/``'wrong'``, optionally ``correct_context_id``,
  ``correct_start``, ``correct_end``: the right span in a passage read), checked against the answer log that
  ``/answer`` writes and stored durably (:mod:`covidqa.feedback.answers`; a bad label is a 400 naming the problem,
  nothing stored); ``/export_feedback``: the labels as SQuAD JSON (``squad``; a wrong answer without a
  correction is an unanswerable question for its passage); ``/eval_feedback``: answer accuracy from the labels.
- ``/qa/train``: fine-tune on ``parameters['file']`` (CSV or SQuAD JSON under ``data_dir``) or on the request's
  labelled documents (below); optional ``eval_file``, ``args`` (QATrainArgs keys), ``start_from``
  (``'current'`` | ``'base'``), ``wait`` (false), ``timeout``. Everything is checked at once (a bad request is a
  400 before anything trains); the training then runs in the background, in a child process that exits when it
  is done (:mod:`covidqa.runtime.child`: torch and the training's memory never stay in this process), so ``/answer`` keeps being served, and
  the request returns the job's status (``wait: true``: the training summary and the optional evaluation when it
  ends). The model is saved atomically to ``model_dir`` and served from then on.
- ``/qa/status``: the background training's ``state`` (idle | running | done | failed), ``seconds``, ``result``
  (the summary) or ``error``; ``answer_cache``: the remembered answers' ``hits``, ``misses`` and ``entries``. Results are in ``response.parameters['__results__'][<executor name>]``.
- ``/qa/eval``: ``{'loss', 'exact_match', 'f1', 'count', 'windows', 'seconds'}`` for ``parameters['file']`` or the
  labelled documents, scored with the reader ``/answer`` serves (same backend, e.g. ONNX int8;
  :mod:`covidqa.reader.scoring`); ``/qa/train``'s ``eval_file`` too, with the newly trained reader.
- ``/qa/test``: ``{'results': [{'answer', 'score', 'start', 'end'}, ...]}`` in file/document order for
  ``parameters['file']`` (answers not needed) or the documents (which also get ``answers``), from the served
  reader.

Documents for ``/qa/*``: ``text`` = question; the context is ``answers[0].context`` when given, else the first
match's ``answer``/``text``; a labelled document carries its gold answer in ``answers[0]`` (``answer`` and
``start``, character offset into the context).

No default endpoint: jina's gateway sends a request only to the Executors that bind its endpoint, so ``/search``,
``/index``, ``/count`` ... skip this process.

Files are resolved under ``data_dir`` (default ``$COVIDQA_HOME/data``, created on start); a path that resolves
outside it is refused. Parameters: :mod:`executors.parameters`. Every client error raises
:class:`executors._common.BadRequest` with a message naming the problem; the Flow keeps serving.

``uses_with``: ``model`` ('' = the trained default reader, else the base model with a warning), ``backend``
('torch' | 'onnx' | 'onnx-int8'), ``max_seq_length`` (384), ``doc_stride`` (128), ``max_answer_length`` (64),
``top_k`` (1), ``num_threads`` (0 = library default), ``data_dir`` ('' = ``$COVIDQA_HOME/data``), ``feedback_dir``
(the answer log and labels; '' = ``$COVIDQA_HOME/feedback``), ``answer_cache`` (answers remembered, default
4096; 0: none; :mod:`covidqa.reader.cache`), ``model_dir`` (where ``/qa/train`` saves; '' =
``$COVIDQA_HOME/models/reader``), and any setting of :class:`covidqa.reader.options.ReadOptions` (defaults
and bounds there: ``max_seq_length``, ``doc_stride``, ``top_k``, ...; a bad one stops the start naming it).
"""
import dataclasses
import threading
from pathlib import Path
from typing import List, Optional

from jina import Executor, requests

from covidqa.data.records import QADataError, QARecord
from covidqa.docs import AnswerReply, AnswerSpan, DocList, QADoc, ReplyMatch, kind_of, reply_match
from covidqa.feedback.answers import AnswerFeedback, AnswerFeedbackError
from covidqa.jobs import TRAIN_READER
from covidqa.models.loading import BASE_MODEL_NAME
from covidqa.paths import default_reader_dir, qa_files_dir
from covidqa.qa.api import QATrainArgs, QATrainArgsError
from covidqa.reader.cache import DEFAULT_ENTRIES, AnswerCache, cache_key
from covidqa.reader.faq_first import read_faq_first
from covidqa.reader.options import REQUEST_OPTIONS, ReadOptions
from covidqa.reader.reader import ExtractiveReader
from covidqa.reader.scoring import evaluate, predict, records_of
from covidqa.runtime.background import BackgroundJob
from covidqa.runtime.child import run_in_child
from executors._common import BadRequest, check_texts, refuse_unknown_settings, settings_of
from executors.parameters import (
    AnswerFeedbackParameters,
    AnswerParameters,
    NoParameters,
    QAFileParameters,
    QATrainParameters,
    or_default,
)

# endpoints that answer a dict (in response.parameters['__results__']): no return annotation, the schemas given
RESULTS = dict(request_schema=DocList[QADoc], response_schema=DocList[QADoc])
DEFAULT_TRAIN_WAIT_S = 3600.0
SHOWN = ('answer', 'start', 'end', 'context_id', 'no_answer', 'score')  # what the answer log keeps of an answer


@settings_of(ReadOptions)
class Reader(Executor):
    """Extractive QA over search matches (``/answer``) and the reader's ``/qa/train``, ``/qa/eval``, ``/qa/test``."""

    def __init__(self, model: str = '', backend: str = 'torch', num_threads: int = 0, data_dir: str = '',
                 model_dir: str = '', feedback_dir: str = '', answer_cache: int = DEFAULT_ENTRIES, **kwargs):
        self.options = ReadOptions.pop_from(kwargs)  # the reading settings of uses_with
        refuse_unknown_settings('Reader', kwargs)
        super().__init__(**kwargs)
        self.backend, self.num_threads = backend, num_threads or None
        self.data_dir = Path(data_dir).resolve() if data_dir else qa_files_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.model_dir = Path(model_dir).resolve() if model_dir else default_reader_dir()
        self._swap_lock = threading.Lock()  # guards the reader swap
        self._training = BackgroundJob('qa-train')  # one training at a time, off the request path
        self._closing = threading.Event()  # set on close: a training child process is terminated
        self.feedback = AnswerFeedback(feedback_dir or None)  # the answers given, and people's verdicts on them
        self.cache = AnswerCache(answer_cache)  # answers of repeated reads (same question, passages, reader)
        self._generation = 0  # moves with every reader swapped in: the cache's reader key
        self.reader = self._new_reader(model or None)  # ready means ready

    def _new_reader(self, model) -> ExtractiveReader:
        return ExtractiveReader(model, backend=self.backend, num_threads=self.num_threads,
                                options=self.options).load()

    def _served(self) -> ExtractiveReader:
        with self._swap_lock:
            return self.reader

    # ------------------------------------------------------------------------------------------------- /answer
    @requests(on='/answer')
    def answer(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[AnswerReply]:
        params = AnswerParameters.parse(parameters, '/answer')
        check_texts(docs, '/answer')
        field = or_default(params.context_field, 'auto')
        contexts = [[self._context_of(m, field) for m in doc.matches] for doc in docs]
        ids = [[m.id for m in doc.matches] for doc in docs]
        titles = [[self._title_of(m, field) for m in doc.matches] for doc in docs]
        # the retrieval cosine is evidence where it compares two questions (an FAQ entry whose answer is read), in
        # the embedder version the calibration was fitted with (version 0); unknown otherwise
        cosines = [[m.cosine if self._reads_answer(m, field) and not doc.model_version else None
                    for m in doc.matches] for doc in docs]
        kinds = [[kind_of(m) for m in doc.matches] for doc in docs]
        read_options = {name: getattr(params, name) for name in REQUEST_OPTIONS}  # None: the reader's own
        faq_first = or_default(params.collection, 'auto') == 'auto'  # an FAQ answer when one is trusted
        with self._swap_lock:
            reader, reader_key = self.reader, f'{self.reader.model_path}#{self._generation}'
        keys = [cache_key(reader_key, d.text, c, i, t, cos, k, read_options, faq_first)
                for d, c, i, t, cos, k in zip(docs, contexts, ids, titles, cosines, kinds)]
        results: List[Optional[list]] = [self.cache.get(key) for key in keys]
        todo = [i for i, found in enumerate(results) if found is None]
        if todo:
            pick = lambda rows: [rows[i] for i in todo]  # noqa: E731
            try:
                if faq_first:
                    read = read_faq_first(reader, pick([d.text for d in docs]), pick(contexts), pick(kinds),
                                          pick(ids), pick(titles), pick(cosines), **read_options)
                else:
                    read = reader.read(pick([d.text for d in docs]), pick(contexts), pick(ids), pick(titles),
                                       pick(cosines), **read_options).answers
            except ValueError as error:
                raise BadRequest(f'/answer: {error}') from None
            for i, fresh in zip(todo, read):
                results[i] = list(fresh)
                self.cache.put(keys[i], fresh)
        replies = DocList[AnswerReply]()
        for doc, ctxs, answers in zip(docs, contexts, results):
            spans = [self._span(a, ctxs, doc.matches, field) for a in answers or []]
            matches = [reply_match(m) for m in doc.matches] if params.return_matches else []
            replies.append(AnswerReply(id=doc.id, text=doc.text, model_version=doc.model_version,
                                       answers=DocList[AnswerSpan](spans), matches=DocList[ReplyMatch](matches)))
            self._log_answers(doc, ctxs, spans)
        return replies

    def _log_answers(self, doc, contexts, spans) -> None:
        """What was shown for ``doc``, so that a verdict on it can be checked (never fails the answer)."""
        try:
            self.feedback.record(doc.id, doc.text, [{k: getattr(s, k) for k in SHOWN} for s in spans],
                                 {m.id: c for m, c in zip(doc.matches, contexts)})
        except Exception as error:  # a full disk: the answer still goes out, its label will be refused
            self.logger.error(f'could not log the answers of {doc.id} in {self.feedback.answers_path}: {error!r}')

    # ------------------------------------------------------------------------------------------ answer feedback
    @requests(on='/answer_feedback', **RESULTS)
    def answer_feedback(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        """One verdict on one answer given: the request's document is the answered question (its id), the
        parameters say which answer, ``right`` or ``wrong``, and optionally the right span. Stored durably before
        the reply; returns the label counts."""
        params = AnswerFeedbackParameters.parse(parameters, '/answer_feedback')
        if len(docs) != 1 or docs[0].id is None:
            raise BadRequest(f'/answer_feedback: send exactly one document, the answered question (its id from the '
                             f'/answer reply); got {len(docs)}')
        if params.verdict is None:
            raise BadRequest("/answer_feedback: parameter 'verdict' is required: 'right' or 'wrong'")
        try:
            return self.feedback.add(docs[0].id, answer=or_default(params.answer, 0), verdict=params.verdict,
                                     correct_context_id=params.correct_context_id,
                                     correct_start=params.correct_start, correct_end=params.correct_end)
        except AnswerFeedbackError as error:
            raise BadRequest(f'/answer_feedback: {error}') from None

    @requests(on='/export_feedback', **RESULTS)
    def export_feedback(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        """The answer labels as SQuAD JSON (haystack's ``/export-feedback``), under ``squad``."""
        NoParameters.parse(parameters, '/export_feedback')
        return {'squad': self.feedback.squad(), **self.feedback.counts()}

    @requests(on='/eval_feedback', **RESULTS)
    def eval_feedback(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        """Answer accuracy from the labels so far: ``{'labels', 'right', 'wrong', 'corrected', 'accuracy'}``."""
        NoParameters.parse(parameters, '/eval_feedback')
        return self.feedback.accuracy()

    @staticmethod
    def _span(a, contexts, matches, field: str) -> AnswerSpan:
        if a.is_no_answer:
            return AnswerSpan(answer=None, no_answer=True, score=a.score)
        match = matches[a.context_index]
        return AnswerSpan(answer=a.answer, score=a.score, start=a.start, end=a.end, context_id=a.context_id,
                          context=contexts[a.context_index], title=Reader._title_of(match, field),
                          source=match.source, url=match.url, kind=kind_of(match), parent_id=match.parent_id,
                          section=match.section)

    @staticmethod
    def _reads_answer(match, field: str) -> bool:
        """Whether the reader reads the match's ``answer`` (an FAQ entry: its ``text`` is the question)."""
        return field == 'answer' or (field == 'auto' and bool(match.answer))

    @staticmethod
    def _title_of(match, field: str):
        """What a match is about, for a person and for the reader's confidence: its title, else the FAQ question
        whose answer is read."""
        return match.title or (match.text if Reader._reads_answer(match, field) else None)

    @staticmethod
    def _context_of(match, field: str) -> str:
        if field == 'answer':
            return match.answer or ''
        if field == 'text':
            return match.text or ''
        return match.answer if match.answer else (match.text or '')

    # ----------------------------------------------------------------------------------------------- /qa/*
    def _resolve_file(self, value: str, key: str) -> Path:
        path = (self.data_dir / value).resolve()
        if not path.is_relative_to(self.data_dir):
            raise BadRequest(f'parameter {key!r}: {value!r} resolves outside the data directory; refused')
        if not path.is_file():
            raise BadRequest(f'parameter {key!r}: no file {value!r} in the data directory {self.data_dir}')
        if path.suffix.lower() not in ('.csv', '.json'):
            raise BadRequest(f'parameter {key!r}: {value!r} must be a .csv or SQuAD .json file')
        return path

    @staticmethod
    def _records_from_docs(docs, endpoint: str, labelled: bool):
        if len(docs) == 0:
            raise BadRequest(f"{endpoint}: send labelled documents or parameters={{'file': 'name.csv'}}")
        records = []
        for position, doc in enumerate(docs):
            where = f'{endpoint}: document {position} (id={doc.id})'
            gold = doc.answers[0] if len(doc.answers) else None
            context = gold.context if gold is not None and gold.context else None
            if context is None and len(doc.matches):
                context = doc.matches[0].answer or doc.matches[0].text
            if not doc.text or not doc.text.strip():
                raise BadRequest(f'{where}: empty question (text)')
            if not context:
                raise BadRequest(f'{where}: no context (answers[0].context or a match with answer/text)')
            if labelled:
                if gold is None or gold.start is None or gold.start < 0 or not gold.answer:
                    raise BadRequest(f'{where}: no gold answer (answers[0] with answer and start)')
                if context[gold.start:gold.start + len(gold.answer)] != gold.answer:
                    raise BadRequest(f'{where}: context[{gold.start}:{gold.start + len(gold.answer)}] is not the '
                                     f'gold answer {gold.answer[:60]!r}')
                records.append(QARecord(context, doc.text.strip(), gold.answer, gold.start, id=doc.id,
                                        source_row=position + 1))
            else:
                records.append(QARecord(context, doc.text.strip(), id=doc.id, source_row=position + 1))
        return records

    def _inputs(self, docs, file, endpoint: str, labelled: bool):
        if file is not None:
            return self._resolve_file(file, 'file')
        return self._records_from_docs(docs, endpoint, labelled)

    @requests(on='/qa/train', **RESULTS)
    def qa_train(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        """Check everything, then train in the background (``/answer`` keeps being served): returns the job's status
        at once, or with ``wait: true`` the training summary when it ends (that request holds the reader meanwhile).
        Progress and the result: ``/qa/status``."""
        params = QATrainParameters.parse(parameters, '/qa/train')
        data = self._inputs(docs, params.file, '/qa/train', labelled=True)
        eval_data = self._resolve_file(params.eval_file, 'eval_file') if params.eval_file is not None else None
        args = dict(or_default(params.args, {}), output_dir=None)
        try:  # read and check it all now: a bad request is refused before anything is trained or swapped in
            records = records_of(data, require_answers=True)
            eval_records = records_of(eval_data, require_answers=True) if eval_data is not None else None
            if eval_records is not None and not eval_records:
                raise QADataError(f'eval_file {params.eval_file!r} holds no records')
            QATrainArgs.from_any(args)
        except (QADataError, QATrainArgsError, ValueError) as error:
            raise BadRequest(f'/qa/train: {error}') from None
        start = BASE_MODEL_NAME if params.start_from == 'base' else self._served().model_path
        if not self._training.start(lambda: self._train(start, records, args, eval_records)):
            raise BadRequest('/qa/train: a training run is already in progress (see /qa/status)')
        if not params.wait:
            return self._training.status()
        self._training.wait(or_default(params.timeout, DEFAULT_TRAIN_WAIT_S))
        status = self._training.status()
        if status['state'] == 'failed':
            raise BadRequest(f"/qa/train: {status['error']}")
        return status.get('result', status)

    def _train(self, start, records, args, eval_records) -> dict:
        # training in a child process that exits when done: torch and the training's memory never stay here
        summary = run_in_child(TRAIN_READER, dict(
            start=str(start), records=[dataclasses.asdict(r) for r in records], args=args,
            model_dir=str(self.model_dir),
            **self.options.model_dump(include={'max_seq_length', 'doc_stride', 'max_answer_length'})),
            stop_event=self._closing)
        new_reader = self._new_reader(self.model_dir)
        with self._swap_lock:
            self.reader, self._generation = new_reader, self._generation + 1
        # the optional evaluation scores what is served from now on (same backend): one model in this process
        scores = evaluate(new_reader, eval_records) if eval_records is not None else None
        summary.update(eval=dataclasses.asdict(scores) if scores else None, model_dir=str(self.model_dir),
                       backend=self.backend)
        return summary

    @requests(on='/qa/status', **RESULTS)
    def qa_status(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        """The background training: ``state`` (idle | running | done | failed), ``seconds``, ``result``/``error``."""
        NoParameters.parse(parameters, '/qa/status')
        return {**self._training.status(), 'answer_cache': self.cache.stats()}

    @requests(on='/qa/eval', **RESULTS)
    def qa_eval(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        params = QAFileParameters.parse(parameters, '/qa/eval')
        data = self._inputs(docs, params.file, '/qa/eval', labelled=True)
        try:
            return {**dataclasses.asdict(evaluate(self._served(), data)), 'backend': self.backend}
        except (QADataError, ValueError) as error:
            raise BadRequest(f'/qa/eval: {error}') from None

    @requests(on='/qa/test', **RESULTS)
    def qa_test(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        params = QAFileParameters.parse(parameters, '/qa/test')
        data = self._inputs(docs, params.file, '/qa/test', labelled=False)
        try:
            results = predict(self._served(), data)
        except (QADataError, ValueError) as error:
            raise BadRequest(f'/qa/test: {error}') from None
        if params.file is None:
            for doc, record, r in zip(docs, data, results):
                doc.answers = DocList[AnswerSpan]([AnswerSpan(answer=r.answer, score=r.score, start=r.start,
                                                              end=r.end, context_id=doc.id or '',
                                                              context=record.context)])
        return {'results': [dataclasses.asdict(r) for r in results]}

    def close(self) -> None:
        self._closing.set()
        super().close()
