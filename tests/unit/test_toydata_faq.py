"""toydata.generate_qa: CovidQA CSV rows -> DocList[QADoc], local or by URL (cached), bad rows named."""
import csv
import functools
import http.server
import threading

import pytest

from toydata import DEFAULT_FAQ_URL, QADataError, default_faq_source, generate_qa


def write_csv(path, rows, columns=('question', 'answer')):
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_community_csv_keeps_answer_and_wrong_answer(community_csv):
    docs = generate_qa(community_csv, question_column='title')
    assert len(docs) == 642
    assert docs[0].text == 'Can pets catch the cold?'
    assert all(d.answer and d.wrong_answer and d.answer != d.wrong_answer for d in docs)


def test_faq_without_wrong_answer_takes_another_rows_answer(faq_csv):
    docs = generate_qa(faq_csv)
    answers = set(docs.answer)
    assert len(docs) == 213
    assert all(d.wrong_answer in answers and d.wrong_answer != d.answer for d in docs)
    assert generate_qa(faq_csv).wrong_answer == docs.wrong_answer  # deterministic for a seed
    assert generate_qa(faq_csv, seed=7).wrong_answer != docs.wrong_answer


def test_train_test_split_like_finetuner(community_csv):
    train = generate_qa(community_csv, num_total=100, num_train=80)
    test = generate_qa(community_csv, num_total=100, num_train=80, is_testset=True)
    assert (len(train), len(test)) == (80, 20)
    assert not set(train.id) & set(test.id)


def test_bad_rows_name_file_and_row_or_are_skipped_with_a_count(tmp_path):
    path = write_csv(tmp_path / 'faq.csv', [{'question': 'q1', 'answer': 'a1'}, {'question': '', 'answer': 'a2'},
                                            {'question': 'q3', 'answer': 'a3'}, {'question': 'q4', 'answer': ' '}])
    with pytest.raises(QADataError, match=r"faq.csv: row 2 .*empty 'question'"):
        generate_qa(path)
    with pytest.warns(UserWarning, match='skipped 2 bad row'):
        docs = generate_qa(path, skip_bad=True)
    assert docs.text == ['q1', 'q3'] and docs.skipped == 2


def test_missing_column_is_named(tmp_path):
    path = write_csv(tmp_path / 'x.csv', [{'question': 'q', 'reply': 'r'}], columns=('question', 'reply'))
    with pytest.raises(QADataError, match=r"missing column\(s\) \['answer'\]"):
        generate_qa(path)
    with pytest.raises(FileNotFoundError, match='no such data file'):
        generate_qa(tmp_path / 'nope.csv')


def test_url_is_downloaded_once_and_cached(tmp_path, monkeypatch):
    served = tmp_path / 'www'
    served.mkdir()
    write_csv(served / 'faq.csv', [{'question': f'q{i}', 'answer': f'a{i}'} for i in range(5)])
    monkeypatch.setenv('COVIDQA_CACHE', str(tmp_path / 'cache'))
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Handler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f'http://127.0.0.1:{server.server_address[1]}/faq.csv'
        first = generate_qa(url)
        second = generate_qa(url)
    finally:
        server.shutdown()
    assert first.text == second.text == [f'q{i}' for i in range(5)]
    assert hits == ['/faq.csv']  # second call read the cache
    assert any((tmp_path / 'cache').glob('*faq.csv'))


def test_default_source_is_the_local_copy_under_the_data_root(faq_csv, tmp_path, monkeypatch):
    # offline (this machine): generate_qa() with no source reads $COVIDQA_DATA's copy, no download
    monkeypatch.setenv('COVIDQA_DATA', str(faq_csv.parents[1]))
    monkeypatch.setenv('COVIDQA_CACHE', str(tmp_path / 'cache'))
    assert default_faq_source() == faq_csv
    assert generate_qa().text == generate_qa(faq_csv).text
    assert not (tmp_path / 'cache').exists()
    # without a local copy the default is the URL (fetched once when online)
    monkeypatch.setenv('COVIDQA_DATA', str(tmp_path / 'empty'))
    assert default_faq_source() == DEFAULT_FAQ_URL
