"""Articles cut into reader-sized passages with exact offsets (covidqa.data.passages)."""
import json

import pytest

from covidqa.data.passages import (
    DEFAULT_MAX_CHARS,
    Passage,
    passages_holding,
    read_squad_articles,
    split_article,
    split_articles,
)
from tests.helpers import data_file


@pytest.fixture(scope='module')
def dev_articles():
    return read_squad_articles(data_file('covid_qa_deepset/covid-qa-dev.json'))


def test_dev_articles_are_read_with_ids_titles_and_questions(dev_articles):
    assert len(dev_articles) == 21 and sum(len(a.questions) for a in dev_articles) == 159
    assert len({a.id for a in dev_articles}) == 21
    for article in dev_articles:
        assert article.title and article.text.startswith(article.title)
        for q in article.questions:
            assert q.article_id == article.id
            assert article.text[q.answer_start:q.answer_end] == q.answer_text


def test_split_keeps_exact_offsets_covers_the_article_and_respects_the_limit(dev_articles):
    for limit in (DEFAULT_MAX_CHARS, 300):
        passages = split_articles(dev_articles, max_size=limit)
        by_article = {}
        for p in passages:
            by_article.setdefault(p.article_id, []).append(p)
        assert set(by_article) == {a.id for a in dev_articles}
        for article in dev_articles:
            mine = by_article[article.id]
            assert [p.index for p in mine] == list(range(len(mine)))
            covered = 0
            for p in mine:
                assert p.text == article.text[p.start:p.end] and p.text == p.text.strip() and p.text
                assert len(p.text) <= limit
                assert p.title == article.title and p.id == f'{article.id}:{p.index}'
                assert p.start >= covered  # ordered, not overlapping
                assert article.text[covered:p.start].strip() == ''  # gaps are whitespace only
                covered = p.end
            assert article.text[covered:].strip() == ''
        if limit == DEFAULT_MAX_CHARS:  # reader-sized, not crumbs: ~650 passages of ~800 characters
            assert 500 < len(passages) < 800
            # nearly every gold answer sits inside one passage (the split does not know the answers)
            inside = sum(len(passages_holding(passages, q.article_id, q.answer_start, q.answer_end)) == 1
                         for a in dev_articles for q in a.questions)
            assert inside >= 155


def test_split_cuts_long_paragraphs_at_sentences_then_words_then_characters():
    text = 'Short title\n\nFirst sentence here. Second one is longer than that.\nx' + 'y' * 30
    passages = split_article(text, 'a', 'Short title', max_size=25)
    assert [p.text for p in passages] == ['Short title', 'First sentence here.', 'Second one is longer than',
                                          'that.', 'xyyyyyyyyyyyyyyyyyyyyyyyy', 'yyyyyy']
    assert all(text[p.start:p.end] == p.text for p in passages)
    # small paragraphs are packed together up to the limit
    packed = split_article('a\nb\n\nc\nd', 'x', max_size=5)
    assert [p.text for p in packed] == ['a\nb', 'c\nd']


def test_split_by_tokens_with_a_size_function():
    text = ' '.join(f'w{i}' for i in range(50))
    passages = split_article(text, 'a', size=lambda s: len(s.split()), max_size=8)
    assert [len(p.text.split()) for p in passages] == [8] * 6 + [2]


def test_a_passage_holds_a_span_of_its_own_article_inside_its_bounds():
    passage = Passage('a:1', 'a', 'T', 1, 10, 20, 'The incubation period of SARS-CoV-2 is 5 days on average.')
    assert passage.holds('a', 12, 18) and passage.holds('a', 10, 20)
    assert not passage.holds('b', 12, 18)  # another article
    assert not passage.holds('a', 5, 12) and not passage.holds('a', 18, 21)  # crosses a bound


@pytest.mark.parametrize('call, message', [
    (lambda: split_article('', 'a'), 'non-empty string'),
    (lambda: split_article('   \n', 'a'), 'non-empty string'),
    (lambda: split_article(None, 'a'), 'non-empty string'),
    (lambda: split_article('text', 'a', max_size=0), 'max_size must be a positive integer'),
    (lambda: split_article('text', 'a', size='len'), 'size must be a function'),
])
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_article_files(tmp_path):
    flat = tmp_path / 'flat.json'
    flat.write_text(json.dumps({'data': [{'id': '1', 'context': 'c', 'question': 'q', 'answers': []}]}))
    with pytest.raises(ValueError, match='has no "paragraphs" list around it'):
        read_squad_articles(flat)
    wrong = tmp_path / 'wrong.json'
    wrong.write_text(json.dumps({'data': [{'paragraphs': [{'context': 'Bats carry it.', 'document_id': 7, 'qas': [
        {'id': 'q1', 'question': 'Who carries it?', 'answers': [{'text': 'Bats', 'answer_start': 3}]}]}]}]}))
    with pytest.raises(ValueError, match=r"wrong.json: record 1 \(data\[0\].paragraphs\[0\].qas\[0\]\): "):
        read_squad_articles(wrong)
    (tmp_path / 'bad.json').write_text('{not json')
    with pytest.raises(ValueError, match='not valid JSON'):
        read_squad_articles(tmp_path / 'bad.json')
    with pytest.raises(FileNotFoundError):
        read_squad_articles(tmp_path / 'missing.json')
