"""QA data files: CSV and SQuAD JSON (nested + flat) readers, clear errors naming file + row, skip mode, writer."""
import json
import warnings
from pathlib import Path

import pytest

from covidqa.data.records import (
    QADataError,
    QARecord,
    QARecords,
    read_qa_csv,
    read_qa_file,
    read_squad_json,
    write_qa_csv,
)
from tests.helpers import data_file

CTX = 'COVID-19 is caused by SARS-CoV-2. It spreads through respiratory droplets.'
GOOD = (CTX, 'What causes COVID-19?', 'SARS-CoV-2', CTX.index('SARS-CoV-2'))


def write_csv(path: Path, header, rows) -> Path:
    import csv

    with open(path, 'w', newline='', encoding='utf-8') as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


HEADER = ['context', 'question', 'answer_text', 'answer_start']


def test_read_good_csv(tmp_path):
    rows = [GOOD, (CTX, 'How does it spread?', 'respiratory droplets', CTX.index('respiratory droplets'))]
    records = read_qa_csv(write_csv(tmp_path / 'train.csv', HEADER, rows))
    assert isinstance(records, QARecords) and records.skipped == 0
    assert [type(r) for r in records] == [QARecord, QARecord]
    first = records[0]
    assert (first.question, first.answer_text, first.answer_start, first.source_row) == (
        'What causes COVID-19?', 'SARS-CoV-2', 22, 1)
    assert first.context[first.answer_start:first.answer_end] == first.answer_text
    assert first.gold_answers == ('SARS-CoV-2',)
    assert records[1].id == '2'


def test_test_csv_needs_only_context_and_question(tmp_path):
    path = write_csv(tmp_path / 'test.csv', ['context', 'question'], [(CTX, 'What causes it?')])
    records = read_qa_csv(path, require_answers=False)
    assert records[0].answer_text is None and records[0].answer_start is None and not records[0].has_answer
    with pytest.raises(QADataError, match=r"test\.csv: missing column\(s\) \['answer_text', 'answer_start'\]"):
        read_qa_csv(path)  # train/eval files need answers


@pytest.mark.parametrize('row, problem', [
    ((CTX, 'q?', 'SARS-CoV-2', 'twenty'), r"answer_start must be an integer, got 'twenty'"),
    ((CTX, 'q?', 'SARS-CoV-2', '5'), r"context\[5:15\] is .* not the answer_text 'SARS-CoV-2'"),
    (('', 'q?', 'x', '0'), 'empty or missing context'),
    ((CTX, '   ', 'SARS-CoV-2', '22'), 'empty or missing question'),
    ((CTX, 'q?', 'SARS-CoV-2', ''), 'missing answer_start'),
    ((CTX, 'q?', 'SARS-CoV-2', '999'), 'answer_start 999 is outside the context'),
    ((CTX, 'q?', '', '3'), 'empty answer_text needs answer_start -1'),
])
def test_bad_rows_name_file_row_and_problem(tmp_path, row, problem):
    path = write_csv(tmp_path / 'bad.csv', HEADER, [GOOD, row])
    with pytest.raises(QADataError, match=r'bad\.csv: row 2 \(line 3\): ' + problem):
        read_qa_csv(path)


def test_short_row_and_missing_column(tmp_path):
    path = tmp_path / 'short.csv'
    path.write_text('context,question,answer_text,answer_start\n"ctx only",q\n')
    with pytest.raises(QADataError, match=r"short\.csv: row 1 \(line 2\): missing value\(s\) for column\(s\) \['answer_text', 'answer_start'\]"):
        read_qa_csv(path)
    path2 = write_csv(tmp_path / 'nocol.csv', ['context', 'question', 'answer'], [(CTX, 'q', 'x')])
    with pytest.raises(QADataError, match=r"nocol\.csv: missing column\(s\) \['answer_text', 'answer_start'\]"):
        read_qa_csv(path2)


def test_skip_bad_counts_and_warns(tmp_path):
    rows = [GOOD, (CTX, 'q?', 'SARS-CoV-2', 'x'), ('', 'q?', 'a', '0'), GOOD]
    path = write_csv(tmp_path / 'mixed.csv', HEADER, rows)
    with pytest.warns(UserWarning, match=r'mixed\.csv: skipped 2 bad record\(s\), kept 2'):
        records = read_qa_csv(path, skip_bad=True)
    assert len(records) == 2 and records.skipped == 2
    assert [r.source_row for r in records] == [1, 4]
    assert 'row 2' in records.problems[0] and 'row 3' in records.problems[1]


def test_no_answer_row_is_explicit(tmp_path):
    records = read_qa_csv(write_csv(tmp_path / 'v2.csv', HEADER, [(CTX, 'Who won?', '', '-1')]))
    assert records[0].answer_text == '' and records[0].answer_start == -1 and records[0].answer_end == -1


def test_multiline_quoted_fields_keep_row_numbers(tmp_path):
    ctx = 'line one\nline two with answer'
    rows = [(ctx, 'q1?', 'answer', ctx.index('answer')), (ctx, 'q2?', 'nope', '0')]
    with pytest.raises(QADataError, match=r'row 2 \(line 5\)'):
        read_qa_csv(write_csv(tmp_path / 'multi.csv', HEADER, rows))


def test_read_nested_squad(tmp_path):
    payload = {'version': 'v2.0', 'data': [{'title': 'Art', 'paragraphs': [{'context': CTX, 'qas': [
        {'id': 'q1', 'question': 'What causes COVID-19?', 'answers': [
            {'text': 'SARS-CoV-2', 'answer_start': 22}, {'text': 'SARS-CoV-2.', 'answer_start': 22}]},
        {'id': 'q2', 'question': 'Who won?', 'answers': [], 'is_impossible': True},
    ]}]}]}
    path = tmp_path / 'nested.json'
    path.write_text(json.dumps(payload))
    records = read_squad_json(path)
    assert [r.id for r in records] == ['q1', 'q2']
    assert records[0].gold_answers == ('SARS-CoV-2', 'SARS-CoV-2.') and records[0].title == 'Art'
    assert records[1].answer_text == '' and records[1].answer_start == -1


def test_read_flat_squad_and_bad_record(tmp_path):
    payload = {'version': 1, 'data': [
        {'id': '0', 'title': 't', 'context': CTX, 'question': 'What causes COVID-19?',
         'answers': [{'text': 'SARS-CoV-2', 'answer_start': 22}]},
        {'id': '1', 'title': 't', 'context': CTX, 'question': 'Spread?',
         'answers': [{'text': 'droplets', 'answer_start': 3}]},
    ]}
    path = tmp_path / 'flat.json'
    path.write_text(json.dumps(payload))
    with pytest.raises(QADataError, match=r'flat\.json: record 2 \(data\[1\]\): context\[3:11\]'):
        read_squad_json(path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        records = read_qa_file(path, skip_bad=True)
    assert len(records) == 1 and records.skipped == 1 and records[0].answer_start == 22


def test_not_squad_and_unknown_suffix(tmp_path):
    (tmp_path / 'x.json').write_text('[1, 2]')
    with pytest.raises(QADataError, match=r'x\.json: not SQuAD JSON'):
        read_qa_file(tmp_path / 'x.json')
    (tmp_path / 'y.json').write_text('{broken')
    with pytest.raises(QADataError, match=r'y\.json: not valid JSON'):
        read_qa_file(tmp_path / 'y.json')
    (tmp_path / 'z.txt').write_text('hi')
    with pytest.raises(QADataError, match=r"unsupported QA file type '\.txt'"):
        read_qa_file(tmp_path / 'z.txt')
    with pytest.raises(QADataError, match='no such file'):
        read_qa_file(tmp_path / 'missing.csv')


def test_write_then_read_round_trip(tmp_path):
    records = [QARecord(*GOOD[:2], GOOD[2], GOOD[3]), QARecord(CTX, 'Spread, "how"?', 'respiratory droplets',
                                                              CTX.index('respiratory droplets'))]
    path = write_qa_csv(records, tmp_path / 'out' / 'rt.csv')
    back = read_qa_csv(path)
    assert [(r.context, r.question, r.answer_text, r.answer_start) for r in back] == [
        (r.context, r.question, r.answer_text, r.answer_start) for r in records]
    test_path = write_qa_csv([QARecord(CTX, 'q?')], tmp_path / 'test.csv')
    assert test_path.read_text().splitlines()[0] == 'context,question'
    assert read_qa_csv(test_path, require_answers=False)[0].answer_text is None


def test_real_covid_qa_files_if_present():
    path = data_file('covid_qa_paragraphs/qa_dev.json')
    records = read_qa_file(path)
    assert len(records) == 191 and records.skipped == 0
    assert all(r.context[r.answer_start:r.answer_end] == r.answer_text for r in records)
