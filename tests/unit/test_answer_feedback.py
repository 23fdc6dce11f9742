"""Answer feedback (covidqa.feedback.answers): labels checked against the answers shown, stored durably, exported as
SQuAD JSON that the reader's own SQuAD reader reads back, and counted."""
import json

import pytest

from covidqa.data.records import read_squad_json
from covidqa.feedback.answers import AnswerFeedback, AnswerFeedbackError

PASSAGE = 'The median incubation period of COVID-19 is 5.1 days. Most people show symptoms within 11.5 days.'
FAQ = 'Wash your hands often with soap and water for at least 20 seconds.'


def shown(feedback):
    start = PASSAGE.index('11.5 days')
    feedback.record('q1', 'How long is the incubation period?',
                    [{'answer': '11.5 days', 'start': start, 'end': start + 9, 'context_id': 'p1', 'score': 0.4},
                     {'answer': '20 seconds', 'start': FAQ.index('20'), 'end': FAQ.index('20') + 10,
                      'context_id': 'f1', 'score': 0.1}], {'p1': PASSAGE, 'f1': FAQ})
    feedback.record('q2', 'Who won the world cup?', [{'answer': None, 'no_answer': True, 'score': 0.9}],
                    {'f1': FAQ})


def test_bad_labels_are_named_and_nothing_is_stored(tmp_path):
    feedback = AnswerFeedback(tmp_path)
    shown(feedback)
    for label, message in [
        (dict(query_id='q9', verdict='right'), "question 'q9' was never answered"),
        (dict(query_id='q1', verdict='maybe'), r"verdict must be one of \('right', 'wrong'\)"),
        (dict(query_id='q1', answer=2, verdict='right'), 'answer 2 was not shown for question'),
        (dict(query_id='q1', verdict='wrong', correct_context_id='p9', correct_start=0, correct_end=3),
         "passage 'p9' was not read for question 'q1'"),
        (dict(query_id='q1', verdict='wrong', correct_context_id='p1', correct_start=90, correct_end=500),
         r'offsets \[90, 500\) are outside passage'),
        (dict(query_id='q1', verdict='wrong', correct_context_id='p1', correct_start=5, correct_end=5), 'or empty'),
        (dict(query_id='q1', verdict='wrong', correct_context_id='p1', correct_start=3, correct_end=4),
         'mark only whitespace'),
        (dict(query_id='q1', verdict='wrong', correct_context_id='p1', correct_start=3), 'a correction needs'),
        (dict(query_id='q1', verdict='right', correct_context_id='p1', correct_start=0, correct_end=3),
         'a right answer takes no correction'),
    ]:
        with pytest.raises(AnswerFeedbackError, match=message):
            feedback.add(**label)
    assert feedback.counts()['labels'] == 0 and not feedback.labels_path.exists()


def test_labels_survive_a_restart_and_export_as_squad_the_reader_reads(tmp_path):
    feedback = AnswerFeedback(tmp_path)
    shown(feedback)
    start = PASSAGE.index('5.1 days')
    feedback.add('q1', answer=0, verdict='wrong', correct_context_id='p1', correct_start=start, correct_end=start + 8)
    feedback.add('q1', answer=1, verdict='wrong')  # no correction: the FAQ entry does not answer it
    feedback.add('q2', verdict='right')  # "no answer" was right: unanswerable for every passage read
    again = AnswerFeedback(tmp_path)  # durable; the answer log is read back too
    assert again.counts() == {'labels': 3, 'right': 1, 'wrong': 2, 'corrected': 1}
    assert again.accuracy()['accuracy'] == round(1 / 3, 4) and again.answered('q1')['question'].startswith('How')
    squad = again.squad()
    path = tmp_path / 'export.json'
    path.write_text(json.dumps(squad))
    records = read_squad_json(path, require_answers=False)
    answered = [r for r in records if r.answer_text]
    assert [(r.context, r.answer_text, r.answer_start) for r in answered] == [(PASSAGE, '5.1 days', start)]
    impossible = sorted((r.question, r.context) for r in records if not r.answer_text)
    assert impossible == [('How long is the incubation period?', FAQ), ('Who won the world cup?', FAQ)]
    with pytest.raises(AnswerFeedbackError, match='the answer label store is full'):
        AnswerFeedback(tmp_path, max_labels=3).add('q1', verdict='right')


def test_only_the_newest_answered_questions_can_be_labelled_and_the_log_stays_bounded(tmp_path):
    feedback = AnswerFeedback(tmp_path, max_remembered=2, max_log_bytes=2000)
    for i in range(30):
        feedback.record(f'q{i}', 'question', [{'answer': 'a', 'start': 0, 'end': 1, 'context_id': 'c'}], {'c': 'a b'})
        assert feedback.answers_path.stat().st_size <= 2000 + 400  # rewritten with the remembered two past it
    assert feedback.answered('q0') is None and feedback.answered('q29') is not None
    again = AnswerFeedback(tmp_path, max_remembered=2)
    assert again.answered('q27') is None and again.answered('q28') and again.answered('q29')
