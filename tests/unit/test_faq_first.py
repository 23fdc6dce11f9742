"""FAQ and literature answered together (covidqa.reader.faq_first) with the shipped, calibrated reader: the FAQ's
answer when the reader trusts it, the literature's when it does not, and the context indices always into the
question's own contexts."""
import pytest

from covidqa.reader.faq_first import read_faq_first
from covidqa.reader.reader import ExtractiveReader

FAQ_RIGHT = 'The incubation period of COVID-19 is about five days, and symptoms appear within 14 days.'
FAQ_OFF = 'Wash your hands often with soap and water for at least 20 seconds.'
PASSAGE = ('We estimated the incubation period from 181 confirmed cases. The median incubation period of '
           'COVID-19 was 5.1 days, and 97.5% of those who develop symptoms do so within 11.5 days of infection.')
QUESTION = 'What is the incubation period of COVID-19?'


@pytest.fixture(scope='module')
def reader():
    return ExtractiveReader().load()  # the shipped reader with its calibration


class CountingReader:
    """The real reader, with the calls it gets written down (what was read, not how)."""

    def __init__(self, reader):
        self.reader, self.calls = reader, []

    def read(self, questions, contexts, *args, **kwargs):
        self.calls.append([list(c) for c in contexts])
        return self.reader.read(questions, contexts, *args, **kwargs)


def test_a_trusted_faq_answer_is_given_without_reading_the_literature(reader):
    counting = CountingReader(reader)
    (answers,) = read_faq_first(counting, [QUESTION], [[PASSAGE, FAQ_RIGHT]], [['literature', 'faq']],
                                context_ids=[['p', 'f']])
    assert not answers[0].is_no_answer, answers
    assert answers[0].context_index == 1 and answers[0].context_id == 'f'
    assert FAQ_RIGHT[answers[0].start:answers[0].end] == answers[0].answer
    assert counting.calls == [[[FAQ_RIGHT]]]  # the passage was never read


def test_an_untrusted_faq_entry_sends_the_question_to_the_literature(reader):
    counting = CountingReader(reader)
    questions = [QUESTION, 'Is the virus a bacterium?']
    contexts = [[FAQ_OFF, PASSAGE], [FAQ_OFF]]  # the second question has no literature: its FAQ reply stands
    (first, second) = read_faq_first(counting, questions, contexts, [['faq', 'literature'], ['faq']])
    best = next(a for a in first if not a.is_no_answer)  # trusted or not, the best span is the passage's
    assert best.context_index == 1 and '5.1 days' in best.answer, first
    assert counting.calls == [[[FAQ_OFF], [FAQ_OFF]], [[PASSAGE]]]  # FAQ first, then question 1's literature
    assert second[0].is_no_answer, second  # untrusted, and nothing else to read


def test_without_faq_contexts_everything_is_read_once_and_kinds_must_align(reader):
    counting = CountingReader(reader)
    (answers,) = read_faq_first(counting, [QUESTION], [[PASSAGE]], [['literature']])
    assert counting.calls == [[[PASSAGE]]]
    assert '5.1 days' in next(a for a in answers if not a.is_no_answer).answer
    with pytest.raises(ValueError, match='kinds must name the kind of every context'):
        read_faq_first(reader, [QUESTION], [[PASSAGE, FAQ_OFF]], [['literature']])
