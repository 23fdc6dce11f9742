"""The documents people have, as index-ready docs (covidqa.data.documents, covidqa.data.formats), read from the
hand-made files of tests/fixtures/documents and from small files written here."""
import importlib.util
import json
import os
import re
import shutil

import pytest

from covidqa.data.documents import (
    LoadedDocuments,
    expand_paths,
    faq_id,
    file_document_id,
    load_documents,
    read_document,
    read_faq_table,
    split_document,
)
from covidqa.data.passages import split_article
from covidqa.data.records import QADataError
from tests.helpers import REPO, data_file
from toydata import generate_qa

FIXTURES = REPO / 'tests' / 'fixtures' / 'documents'
DOCUMENT_FILES = ('guideline.pdf', 'notes.md', 'notes.txt', 'page.html', 'paper.json')
HIDDEN_WORDS = ('zebrafalcon', 'quokka', 'trackingSecret', 'stylerulemarker', 'font-family', 'noscriptmarker',
                'templatemarker', 'not text')
PAPER_ID = '3f2c1d0e9b8a7f6e5d4c3b2a19087f6e5d4c3b2a'


def make_pdf_module():
    spec = importlib.util.spec_from_file_location('make_pdf', FIXTURES / 'make_pdf.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def texts_by_id(paths):
    """Document id -> the document's full extracted text."""
    return {doc.id: doc.text for path in paths for doc in read_document(path)}


def literature(loaded):
    return [d for d in loaded.docs if d.kind == 'literature']


def assert_exact_passages(loaded, texts, max_chars):
    passages = literature(loaded)
    assert passages
    for p in passages:
        assert texts[p.parent_id][p.offset_start:p.offset_end] == p.text and p.text == p.text.strip() and p.text
        assert len(p.text) <= max_chars
        assert p.id.startswith(f'{p.parent_id}:')


# --------------------------------------------------------------------------------------------------- formats
def test_the_pdf_has_two_pages_of_text_and_its_metadata_title():
    [doc] = read_document(FIXTURES / 'guideline.pdf')
    assert doc.title == 'COVID-19 guideline for shared indoor spaces'
    assert 'Open windows for a few minutes every hour' in doc.text  # page 1
    assert 'Wear a well-fitting mask that covers your nose and mouth' in doc.text  # page 2
    first, second = doc.text.split('\n\n')  # pages separated by a blank line
    assert 'Ventilation' in first and second.startswith('Masks')
    assert doc.sections == ((None, 0, len(doc.text)),) and doc.source == 'guideline.pdf'
    assert doc.id == file_document_id(FIXTURES / 'guideline.pdf') and doc.id.startswith('guideline-')


def test_the_committed_pdf_is_what_make_pdf_writes_and_a_pdf_without_title_takes_its_first_line(tmp_path):
    module = make_pdf_module()
    assert module.pdf_bytes(module.GUIDELINE_PAGES, module.GUIDELINE_TITLE) == (FIXTURES / 'guideline.pdf').read_bytes()
    untitled = tmp_path / 'untitled.pdf'
    untitled.write_bytes(module.pdf_bytes([['', 'Physical distancing (2 m)', 'Keep two metres apart.']]))
    [doc] = read_document(untitled)
    assert doc.title == 'Physical distancing (2 m)' and 'Keep two metres apart.' in doc.text
    blank = tmp_path / 'scanned.pdf'
    blank.write_bytes(module.pdf_bytes([[], []]))
    with pytest.raises(QADataError, match=r'scanned.pdf: no extractable text in 2 page\(s\)'):
        read_document(blank)


def test_a_cord19_paper_has_its_abstract_and_body_sections():
    [doc] = read_document(FIXTURES / 'paper.json')
    assert doc.id == PAPER_ID and doc.title.startswith('Incubation period and early symptoms of COVID-19')
    assert [s.name for s in doc.sections] == ['Abstract', 'Introduction', 'Incubation period']
    name, start, end = doc.sections[2]
    assert doc.text[start:end].startswith('The incubation period of COVID-19 is about 5 days.')
    assert doc.text[start:end].endswith('sense of smell.')  # two paragraphs of one section make one section
    assert doc.source == 'paper.json'


def test_an_html_page_keeps_its_visible_text_title_headings_and_canonical_url():
    [doc] = read_document(FIXTURES / 'page.html')
    assert doc.title == 'Hand hygiene & COVID-19' and doc.url == 'https://example.org/hand-hygiene'
    assert [s.name for s in doc.sections] == ['Hand hygiene', 'How to wash your hands', 'Hand sanitizer']
    assert 'Wash your hands with soap and water for at least 20 seconds' in doc.text  # &nbsp; decoded, a space
    assert '60% alcohol.\nRub it in' in doc.text  # &#37; decoded, <br> a line break
    for word in HIDDEN_WORDS:
        assert word not in doc.text
    assert 'Hand hygiene & COVID-19' not in doc.text  # the <title> is the title, not text
    for name, start, end in doc.sections:
        assert doc.text[start:end].startswith(name)  # a heading starts its section


def test_markdown_drops_its_markup_and_its_headings_name_the_sections():
    [doc] = read_document(FIXTURES / 'notes.md')
    assert doc.title == 'Vaccination notes'
    assert [s.name for s in doc.sections] == ['Vaccination notes', 'Severe illness', 'Booster doses']
    assert 'COVID-19 vaccines are safe and effective. See the WHO vaccine page for details.' in doc.text
    assert not re.search(r'[*_]{1,2}\w|\]\(|https://www.who.int|^#', doc.text.split('```')[0], re.MULTILINE)
    assert '# a code sample, not a heading' in doc.text  # fenced code is text, not a heading


def test_markdown_front_matter_links_and_code(tmp_path):
    path = tmp_path / 'guide.markdown'
    path.write_text('---\ntitle: "Home care"\nauthor: x\n---\nIntro with `snake_case_name` and *one* **two** and '
                    '![a chart](img/c.png "Chart") and <https://who.int>.\n\n### Isolation ###\n\nStay in a '
                    'separate room.\n\n[ref]: https://example.org\n\nAfter *isolation*\n---\n\nOpen a window.\n')
    [doc] = read_document(path)
    assert doc.title == 'Home care' and 'author' not in doc.text
    assert doc.text.startswith('Intro with snake_case_name and one two and a chart and https://who.int.')
    assert [s.name for s in doc.sections] == [None, 'Isolation', 'After isolation']  # ATX and setext headings
    assert 'example.org' not in doc.text and 'Stay in a separate room.\n\nAfter isolation' in doc.text


def test_plain_text_is_kept_as_it_is():
    [doc] = read_document(FIXTURES / 'notes.txt')
    assert doc.title == 'Testing notes' and doc.text == (FIXTURES / 'notes.txt').read_text()
    assert doc.sections == ((None, 0, len(doc.text.rstrip())),)


def test_squad_json_gives_one_document_per_distinct_context(tmp_path):
    qa = {'id': 'q', 'question': 'Who?', 'answers': [{'text': 'Bats', 'answer_start': 0}]}
    path = tmp_path / 'squad.json'
    path.write_text(json.dumps({'data': [
        {'title': 'Reservoirs', 'paragraphs': [
            {'context': 'Bats carry it.', 'document_id': 7, 'qas': [qa, dict(qa, id='q2')]},
            {'context': 'Bats fly at night.', 'qas': [qa]},
            {'context': 'Bats fly at night.', 'qas': [dict(qa, id='q3')]},
            {'context': 'Camels too.', 'qas': [dict(qa, answers=[{'text': 'Bats', 'answer_start': 0}])]}]}]}))
    problems = []
    docs = read_document(path, problems=problems)
    assert [(d.id, d.title, d.text) for d in docs] == [
        ('7', 'Reservoirs', 'Bats carry it.'), (f'{file_document_id(path)}-1', 'Reservoirs', 'Bats fly at night.')]
    assert len(problems) == 1 and 'squad.json: record 5' in problems[0]  # 'Bats' is not at 0 of 'Camels too.'
    with pytest.raises(QADataError, match='record 5'):
        read_document(path)


@pytest.mark.parametrize('content, message', [
    ({'rows': []}, r"not a document JSON: expected SQuAD JSON .* or a CORD-19 paper .*found an object with the keys "
                   r"\['rows'\]"),
    ([1, 2], 'found a JSON list'),
    ({'paper_id': '', 'body_text': []}, 'needs a non-empty "paper_id"'),
    ({'paper_id': 'p1', 'body_text': [{'text': ' ', 'section': 'x'}]}, 'a CORD-19 paper with no text'),
])
def test_other_json_is_an_error_naming_what_was_expected(tmp_path, content, message):
    path = tmp_path / 'other.json'
    path.write_text(json.dumps(content))
    with pytest.raises(QADataError, match=message):
        read_document(path)


def test_faq_tables_csv_tsv_and_jsonl(tmp_path):
    table = read_faq_table(FIXTURES / 'faq.csv', question_column='Question', answer_column='Answer')
    assert [e.row for e in table.entries] == [1, 2, 4] and table.columns == ['ID', 'Category', 'Question', 'Answer']
    assert table.problems == [f"{FIXTURES / 'faq.csv'}: row 3 (line 4): empty 'Answer'"]
    entry = table.entries[0]
    assert entry.id == faq_id(entry.question, entry.answer)
    plain = tmp_path / 'plain.csv'  # toydata's generate_qa and the CLI's loader give an entry one id
    plain.write_text('question,answer\nDo masks help?,Yes.\nIs it airborne?,It can be.\n')
    assert list(generate_qa(plain).id) == list(load_documents(plain).docs.id)

    tsv = tmp_path / 'faq.tsv'
    tsv.write_text('question\tanswer\ttitle\tsource\tlink\nDo masks help?\tYes, they do.\tMasks\tWHO\thttps://who.int\n'
                   '\tNo question.\t\t\t\n')
    table = read_faq_table(tsv)
    assert [(e.question, e.answer, e.title, e.source, e.url) for e in table.entries] == [
        ('Do masks help?', 'Yes, they do.', 'Masks', 'WHO', 'https://who.int')]
    assert table.problems == [f"{tsv}: row 2 (line 3): empty 'question'"]

    jsonl = tmp_path / 'faq.jsonl'
    jsonl.write_text('{"q": "Is it airborne?", "a": "It can spread through aerosols.", "url": "https://x.org"}\n'
                     '{not json\n\n[1]\n{"q": "Who?", "a": 42}\n')
    table = read_faq_table(jsonl, question_column='q', answer_column='a')
    assert [(e.question, e.answer, e.url, e.row) for e in table.entries] == [
        ('Is it airborne?', 'It can spread through aerosols.', 'https://x.org', 1), ('Who?', '42', None, 5)]
    assert [p.split(': ', 2)[1] for p in table.problems] == ['line 2', 'line 4']


def test_a_missing_column_names_the_columns_the_file_has(tmp_path):
    path = tmp_path / 'fragen.csv'
    path.write_text('Frage,Antwort\nWas ist das?,Ein Virus.\n')
    with pytest.raises(QADataError, match=r"fragen.csv: missing column\(s\) \['question', 'answer'\]; the file has "
                                          r"\['Frage', 'Antwort'\]"):
        read_faq_table(path)
    loaded = load_documents(path)
    assert not loaded.docs and loaded.files == 0 and "['Frage', 'Antwort']" in loaded.problems[0]
    assert len(load_documents(path, question_column='Frage', answer_column='Antwort').docs) == 1
    header_only = tmp_path / 'header.csv'
    header_only.write_text('question,answer\n')
    loaded = load_documents(header_only)
    assert loaded.files == 0 and loaded.problems == [f'{header_only}: no FAQ entries (no rows, or every row was bad)']


# --------------------------------------------------------------------------------------------------- passages
@pytest.mark.parametrize('max_chars, overlap_chars', [(1000, 200), (120, 60), (60, 0)])
def test_passage_offsets_are_exact_and_passages_fit(max_chars, overlap_chars):
    loaded = load_documents([FIXTURES / name for name in DOCUMENT_FILES], max_chars=max_chars,
                            overlap_chars=overlap_chars)
    assert not loaded.problems and loaded.literature == len(DOCUMENT_FILES) == loaded.documents
    assert_exact_passages(loaded, texts_by_id(FIXTURES / name for name in DOCUMENT_FILES), max_chars)
    for p in literature(loaded):
        for word in HIDDEN_WORDS:
            assert word not in p.text


def test_passages_carry_their_document_fields():
    loaded = load_documents([FIXTURES / 'page.html', FIXTURES / 'paper.json'])
    page, paper = [d for d in loaded.docs if d.parent_id != PAPER_ID], [d for d in loaded.docs if d.parent_id == PAPER_ID]
    assert [d.id for d in paper] == [f'{PAPER_ID}:{i}' for i in range(len(paper))]
    assert {(d.title, d.source, d.url, d.kind, d.answer) for d in page} == {
        ('Hand hygiene & COVID-19', 'page.html', 'https://example.org/hand-hygiene', 'literature', None)}
    assert [d.section for d in paper] == ['Abstract', 'Introduction', 'Incubation period']
    assert any('The incubation period of COVID-19 is about 5 days.' in d.text for d in paper)


def long_document(tmp_path):
    sentences = [f'Sentence number {i} says something about the virus.' for i in range(40)]
    path = tmp_path / 'long.md'
    path.write_text('# Part one\n\n' + ' '.join(sentences[:20]) + '\n\n# Part two\n\n' + ' '.join(sentences[20:]) + '\n')
    return path


def test_consecutive_passages_of_a_section_overlap_by_whole_sentences_but_sections_do_not(tmp_path):
    path = long_document(tmp_path)
    loaded = load_documents(path, max_chars=300, overlap_chars=120)
    [doc] = read_document(path)
    assert_exact_passages(loaded, {doc.id: doc.text}, 300)
    passages = literature(loaded)
    pairs = list(zip(passages, passages[1:]))
    within = [(p, q) for p, q in pairs if p.section == q.section]
    across = [(p, q) for p, q in pairs if p.section != q.section]
    assert len(within) >= 6 and len(across) == 1
    for p, q in within:
        assert p.offset_start < q.offset_start < p.offset_end  # overlapping, never the whole previous passage
        repeated = doc.text[q.offset_start:p.offset_end]
        assert 0 < len(repeated) <= 120 and p.text.endswith(repeated) and q.text.startswith(repeated)
        assert re.fullmatch(r'(Sentence number \d+ says something about the virus\. ?)+', repeated)  # whole ones
    for p, q in across:
        assert q.offset_start > p.offset_end and q.text.startswith('Part two')
    no_overlap = literature(load_documents(path, max_chars=300, overlap_chars=0))
    assert all(q.offset_start >= p.offset_end for p, q in zip(no_overlap, no_overlap[1:]))
    assert len(no_overlap) < len(passages)


def test_no_overlap_when_the_last_sentence_is_too_long_or_is_the_whole_passage():
    words = ' '.join(f'word{i}' for i in range(60))  # one sentence of 400 characters
    passages = split_article(words, 'a', max_size=100, overlap=50)
    assert len(passages) > 3 and all(q.start > p.end for p, q in zip(passages, passages[1:]))
    assert [p.text for p in split_article('One.\nTwo.\nThree.', 'b', max_size=6, overlap=100)] == [
        'One.', 'Two.', 'Three.']  # a passage is never repeated whole
    assert [p.text for p in split_article('A. B. C. D.', 'c', max_size=5, overlap=10)] == ['A. B.', 'B. C.', 'C. D.']
    with pytest.raises(ValueError, match='overlap must be a non-negative integer'):
        split_article('text', 'd', overlap=-1)
    with pytest.raises(ValueError, match='overlap_chars must be a non-negative integer'):
        load_documents(FIXTURES / 'notes.txt', overlap_chars=-5)
    with pytest.raises(ValueError, match='max_chars must be a positive integer'):
        split_document(read_document(FIXTURES / 'notes.txt')[0], max_chars=0)


# --------------------------------------------------------------------------------------------------- ids
def test_ids_are_stable_across_reads_and_working_directories(tmp_path, monkeypatch):
    paths = [FIXTURES / name for name in DOCUMENT_FILES] + [FIXTURES / 'faq.csv']
    first = [d.id for d in load_documents(paths).docs]
    assert first == [d.id for d in load_documents(paths).docs] and len(set(first)) == len(first)
    monkeypatch.chdir(tmp_path)
    assert first == [d.id for d in load_documents([os.path.relpath(p, tmp_path) for p in paths]).docs]
    monkeypatch.chdir(FIXTURES)
    assert first == [d.id for d in load_documents(list(DOCUMENT_FILES) + ['faq.csv']).docs]


def test_faq_entries_become_faq_docs_and_the_bad_row_is_named_and_skipped():
    loaded = load_documents(FIXTURES / 'faq.csv', question_column='Question', answer_column='Answer')
    assert loaded.faq_tables == 1 == loaded.documents and loaded.faq_entries == 3 == len(loaded.docs)
    assert loaded.problems == [f"{FIXTURES / 'faq.csv'}: row 3 (line 4): empty 'Answer'"]
    doc = loaded.docs[0]
    assert (doc.kind, doc.text, doc.source, doc.parent_id) == (
        'faq', 'What are the most common symptoms of COVID-19?', 'faq.csv', None)
    assert doc.answer.startswith('Fever, a dry cough') and doc.id == faq_id(doc.text, doc.answer)
    with pytest.raises(QADataError, match=r'faq.csv: row 3 \(line 4\)'):
        load_documents(FIXTURES / 'faq.csv', question_column='Question', answer_column='Answer', strict=True)


# --------------------------------------------------------------------------------------------------- loading
def test_a_folder_reads_everything_and_a_damaged_pdf_is_a_problem_not_a_stop():
    calls = []
    loaded = load_documents(FIXTURES, question_column='Question', answer_column='Answer',
                            progress=lambda *args: calls.append(args))
    assert isinstance(loaded, LoadedDocuments)
    assert loaded.files == 6 and loaded.skipped_unsupported == 1  # make_pdf.py
    assert loaded.faq_tables == 1 and loaded.literature == 5 and loaded.documents == 6
    assert [p.split(':')[0] for p in loaded.problems] == [str(FIXTURES / 'damaged.pdf'), str(FIXTURES / 'faq.csv')]
    assert 'not a readable PDF' in loaded.problems[0]
    sources = [d.source for d in loaded.docs]
    assert sorted(set(sources), key=sources.index) == ['faq.csv', 'guideline.pdf', 'notes.md', 'notes.txt',
                                                        'page.html', 'paper.json']  # sorted file order
    assert [c[:2] for c in calls] == [(i, 7) for i in range(1, 8)] and calls[-1][2] == len(loaded.docs)
    assert loaded.summary() == (f'6 files: 1 FAQ table (3 entries), 5 documents ({loaded.passages} passages); '
                                f'1 unsupported file skipped; 2 problems')
    with pytest.raises(QADataError, match=r'damaged.pdf: not a readable PDF \('):
        load_documents([FIXTURES / 'damaged.pdf', FIXTURES / 'notes.txt'], strict=True)


def test_globs_hidden_files_unsupported_and_missing_paths(tmp_path, monkeypatch):
    (tmp_path / 'a' / 'b').mkdir(parents=True)
    (tmp_path / '.hidden').mkdir()
    for name in ('a/z.txt', 'a/b/y.txt', 'a/b/x.md', '.hidden/w.txt', 'a/.v.txt', 'a/b/data.bin'):
        (tmp_path / name).write_text(f'Text of {name}.\n')
    loaded = load_documents(tmp_path)
    assert [d.source for d in loaded.docs] == ['x.md', 'y.txt', 'z.txt'] and loaded.skipped_unsupported == 1
    files, problems, skipped = expand_paths([str(tmp_path / '**' / '*.txt'), tmp_path / 'a' / 'z.txt'])
    assert [f.name for f in files] == ['y.txt', 'z.txt'] and not problems and not skipped  # each file once
    monkeypatch.chdir(tmp_path)
    assert [f.name for f in expand_paths('a/*')[0]] == ['x.md', 'y.txt', 'z.txt']  # a matched folder is read
    (tmp_path / 'empty.txt').write_text(' \n')
    loaded = load_documents(['a/b/data.bin', 'nowhere.txt', 'nothing/*.pdf', 'empty.txt', 'a/z.txt'])
    assert len(loaded.docs) == 1 and loaded.files == 1
    assert [p.split(': ', 1) for p in loaded.problems] == [
        ['a/b/data.bin', "unsupported file type '.bin'; supported: .csv, .tsv, .jsonl, .txt, .md, .markdown, .html, "
                         ".htm, .pdf, .json"],
        ['nowhere.txt', 'no such file or folder'],
        ['nothing/*.pdf', 'no file matches this pattern'],
        ['empty.txt', 'no text (an empty file)']]
    with pytest.raises(QADataError, match='a/b/data.bin: unsupported file type'):
        load_documents(['a/z.txt', 'a/b/data.bin'], strict=True)


def test_a_document_id_read_twice_is_a_problem_and_faq_duplicates_are_left_out(tmp_path):
    shutil.copy(FIXTURES / 'paper.json', tmp_path / 'pdf_json.json')
    shutil.copy(FIXTURES / 'paper.json', tmp_path / 'pmc_json.json')
    shutil.copy(FIXTURES / 'faq.csv', tmp_path / 'faq-copy.csv')
    loaded = load_documents([tmp_path, FIXTURES / 'faq.csv'], question_column='Question', answer_column='Answer')
    assert loaded.literature == 1 and loaded.faq_entries == 3 and loaded.duplicates == 3 and loaded.faq_tables == 1
    assert len({d.id for d in loaded.docs}) == len(loaded.docs)
    assert any(f"pmc_json.json: document '{PAPER_ID}' was already read from" in p for p in loaded.problems)
    assert '3 duplicate FAQ entries left out' in loaded.summary()


def test_text_in_windows_1252_and_utf8_bom(tmp_path):
    (tmp_path / 'cp.txt').write_bytes('Caf\xe9 notes: wash hands \u2013 often.'.encode('cp1252'))
    (tmp_path / 'bom.csv').write_bytes('\ufeffquestion,answer\r\nWhy?,"Because\r\nof it."\r\n'.encode('utf-8'))
    loaded = load_documents(tmp_path)
    assert [d.text for d in loaded.docs] == ['Why?', 'Café notes: wash hands \u2013 often.']
    assert loaded.docs[0].answer == 'Because\nof it.'


# --------------------------------------------------------------------------------------------------- real data
def test_the_deepset_faq_and_the_covid_qa_dev_articles():
    faq = load_documents(data_file('covid_faq_deepset/faq_covidbert.csv'))
    assert not faq.problems and 200 <= faq.faq_entries <= 213 and faq.faq_entries + faq.duplicates == 213
    assert all(d.kind == 'faq' and d.answer and d.url for d in faq.docs)
    path = data_file('covid_qa_deepset/covid-qa-dev.json')
    loaded = load_documents(path)
    assert not loaded.problems and loaded.literature == 21 and loaded.files == 1
    texts = texts_by_id([path])
    assert len(texts) == 21 and len({d.parent_id for d in loaded.docs}) == 21
    assert_exact_passages(loaded, texts, 1000)
    passages = loaded.docs
    assert any(q.offset_start < p.offset_end for p, q in zip(passages, passages[1:]) if p.parent_id == q.parent_id)


def test_a_tsv_quote_is_text_not_quoting(tmp_path):
    tsv = tmp_path / 'faq.tsv'
    tsv.write_text('question\tanswer\nIs it "novel"?\t"Novel" means new.\nWhat now?\tWash your hands.\n')
    entries = read_faq_table(tsv).entries
    assert [(e.question, e.answer) for e in entries] == [('Is it "novel"?', '"Novel" means new.'),
                                                         ('What now?', 'Wash your hands.')]
