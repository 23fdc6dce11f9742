"""The lexical sentence prior (covidqa.text.lexical) and how the reader applies it."""
import math

import pytest

from covidqa.text.lexical import sentence_bounds, sentence_matches, span_match
from tests.helpers import read_one

ARTICLE = ('Masks reduce the spread of respiratory viruses. The incubation period of COVID-19 is 1-14 days.\n'
           'Patients were infected in Wuhan! Most patients recovered. Patients in the incubation period may '
           'transmit the virus.')


def test_sentences_cover_the_text_in_order():
    bounds = sentence_bounds(ARTICLE)
    assert ''.join(ARTICLE[a:b] for a, b in bounds) == ARTICLE
    assert [ARTICLE[a:b].strip() for a, b in bounds][:3] == [
        'Masks reduce the spread of respiratory viruses.', 'The incubation period of COVID-19 is 1-14 days.',
        'Patients were infected in Wuhan!']
    assert sentence_bounds('') == []


def test_bm25_prefers_the_sentence_with_the_question_words():
    matches = sentence_matches('What is the incubation period of COVID-19?', [ARTICLE])[0]
    text = [ARTICLE[s.start:s.end].strip() for s in matches]
    best = max(matches, key=lambda s: s.match)
    assert best.match == 1.0 and text[matches.index(best)].startswith('The incubation period of COVID-19')
    by_text = dict(zip(text, (s.match for s in matches)))
    # shares "incubation period" but not "COVID-19": in between
    assert 0.0 < by_text['Patients in the incubation period may transmit the virus.'] < 1.0
    assert by_text['Masks reduce the spread of respiratory viruses.'] == 0.0


def test_stems_rare_words_and_several_contexts():
    # "infection" ~ "infected" (6-letter stem); normalised over all contexts of the question
    matches = sentence_matches('Where did the infection start?', ['Nothing here.', ARTICLE])
    assert [s.match for s in matches[0]] == [0.0]
    best = max(matches[1], key=lambda s: s.match)
    assert best.match == 1.0 and 'infected in Wuhan' in ARTICLE[best.start:best.end]
    # a word in every sentence says less than a rare one (IDF)
    ctx = 'Virus spreads by air. Virus spreads by touch. Virus spreads by water in Wuhan.'
    m = sentence_matches('Does the virus spread in Wuhan?', [ctx])[0]
    assert m[2].match == 1.0 and m[0].match < 0.5
    # no question word anywhere: no preference
    assert {s.match for s in sentence_matches('Why?', [ARTICLE])[0]} == {1.0}


def test_span_match_takes_the_best_sentence_a_span_touches():
    matches = sentence_matches('What is the incubation period of COVID-19?', [ARTICLE])[0]
    first, second = matches[0], matches[1]
    assert span_match(matches, first.start, first.start + 5) == first.match == 0.0
    assert span_match(matches, first.start, second.start + 3) == 1.0  # crosses into the best sentence
    assert span_match(matches, len(ARTICLE) + 5, len(ARTICLE) + 9) == 1.0  # outside every sentence: neutral


def test_reader_discounts_spans_outside_the_best_sentence():
    from covidqa.reader.reader import ExtractiveReader

    sentences = ARTICLE.split('\n')[0].split('. ')
    contexts = [ARTICLE, ' '.join(sentences[::-1])]
    question = 'What is the incubation period of COVID-19?'
    # overlap_threshold 1 and room for every candidate (20 a window): the weighted list is the plain one rescored
    reader = ExtractiveReader(model='base', max_seq_length=64, doc_stride=16, no_answer_threshold=0.0,
                              overlap_threshold=1.0)
    plain = read_one(reader, question, contexts, top_k=1000, span_candidates=20, lexical_weight=0)
    weighted = read_one(reader, question, contexts, top_k=1000, span_candidates=20, lexical_weight=3.0)
    assert reader.options.lexical_weight == 0  # the default is off; per-call values do not stick
    matches = sentence_matches(question, contexts)
    raw = {(a.context_index, a.start, a.end): a.score for a in plain}
    assert len(weighted) == len(plain)
    for a in weighted:
        m = span_match(matches[a.context_index], a.start, a.end)
        assert a.score == pytest.approx(raw[(a.context_index, a.start, a.end)] * math.exp(-3.0 * (1 - m)))
    assert [a.score for a in weighted] == sorted((a.score for a in weighted), reverse=True)
    # a strong prior puts the best answer inside a best-matching sentence, whatever the untrained head says
    top = read_one(reader, question, contexts, lexical_weight=100.0)[0]
    assert span_match(matches[top.context_index], top.start, top.end) == 1.0
    with pytest.raises(ValueError, match="'lexical_weight' must be a number between 0.0 and 100.0"):
        read_one(reader, question, contexts, lexical_weight=-1)
    with pytest.raises(ValueError, match='lexical_weight'):
        ExtractiveReader(lexical_weight='high')


def test_question_answering_passes_the_weight_to_its_reader():
    from covidqa.qa.api import QuestionAnswering
    from covidqa.reader.options import DEFAULT_LEXICAL_WEIGHT

    assert QuestionAnswering('base').reader.options.lexical_weight == DEFAULT_LEXICAL_WEIGHT == 0.0
    assert QuestionAnswering('base', lexical_weight=20).reader.options.lexical_weight == 20.0
