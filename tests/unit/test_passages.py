"""Articles cut into reader-sized passages with exact offsets, and BM25 over them (covidqa.data.passages)."""
import json

import pytest

from covidqa.data.passages import (
    DEFAULT_MAX_CHARS,
    BM25Retriever,
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


def test_bm25_ranks_the_passage_with_the_question_words_first():
    passages = [
        Passage('a:0', 'a', 'T', 0, 0, 10, 'Masks reduce the spread of respiratory viruses in crowded rooms.'),
        Passage('a:1', 'a', 'T', 1, 10, 20, 'The incubation period of SARS-CoV-2 is 5 days on average.'),
        Passage('b:0', 'b', 'U', 0, 0, 10, 'Bats are the natural reservoir of many coronaviruses.'),
        Passage('b:1', 'b', 'U', 1, 10, 20, 'Patients were treated in intensive care; the period of stay varied.'),
    ]
    bm25 = BM25Retriever(passages)
    found = bm25.search('What is the incubation period of SARS-CoV-2?', limit=3)
    assert [r.passage.id for r in found][:2] == ['a:1', 'b:1'] and [r.rank for r in found] == [1, 2]
    assert found[0].score > found[1].score > 0
    assert bm25.search('Which animals are reservoirs of coronaviruses?', limit=1)[0].passage.id == 'b:0'
    assert bm25.search('zebra', limit=3) == []  # no shared word: nothing retrieved
    assert passages[1].holds('a', 12, 18) and not passages[1].holds('b', 12, 18)
    assert not passages[1].holds('a', 5, 12)


def test_bm25_finds_most_dev_answers_in_its_top_20(dev_articles):
    passages = split_articles(dev_articles)
    bm25 = BM25Retriever(passages)
    questions = [q for a in dev_articles for q in a.questions]
    hits = sum(any(r.passage.holds(q.article_id, q.answer_start, q.answer_end) for r in bm25.search(q.question, 20))
               for q in questions)
    assert hits / len(questions) >= 0.85  # measured 0.93


@pytest.mark.parametrize('call, message', [
    (lambda: split_article('', 'a'), 'non-empty string'),
    (lambda: split_article('   \n', 'a'), 'non-empty string'),
    (lambda: split_article(None, 'a'), 'non-empty string'),
    (lambda: split_article('text', 'a', max_size=0), 'max_size must be a positive integer'),
    (lambda: split_article('text', 'a', size='len'), 'size must be a function'),
    (lambda: BM25Retriever([]), 'at least one passage'),
    (lambda: BM25Retriever(['a text']), 'takes Passage objects'),
    (lambda: BM25Retriever([Passage('a:0', 'a', None, 0, 0, 1, 'x')]).search('  '), 'non-empty string'),
    (lambda: BM25Retriever([Passage('a:0', 'a', None, 0, 0, 1, 'x')]).search('x', limit=0), 'limit must be'),
])
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_article_files(tmp_path):
    flat = tmp_path / 'flat.json'
    flat.write_text(json.dumps({'data': [{'id': '1', 'context': 'c', 'question': 'q', 'answers': []}]}))
    with pytest.raises(ValueError, match='no "paragraphs" list'):
        read_squad_articles(flat)
    wrong = tmp_path / 'wrong.json'
    wrong.write_text(json.dumps({'data': [{'paragraphs': [{'context': 'Bats carry it.', 'document_id': 7, 'qas': [
        {'id': 'q1', 'question': 'Who carries it?', 'answers': [{'text': 'Bats', 'answer_start': 3}]}]}]}]}))
    with pytest.raises(ValueError, match=r"wrong.json: data\[0\].paragraphs\[0\].qas\[0\]: context\[3:7\] is not"):
        read_squad_articles(wrong)
    (tmp_path / 'bad.json').write_text('{not json')
    with pytest.raises(ValueError, match='not JSON'):
        read_squad_articles(tmp_path / 'bad.json')
    with pytest.raises(FileNotFoundError):
        read_squad_articles(tmp_path / 'missing.json')
