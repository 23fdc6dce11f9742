"""Data in: CovidQA rows as DocLists (:func:`generate_qa`), the documents people have (FAQ tables, PDF, HTML,
Markdown, text, CORD-19 and SQuAD JSON) as index-ready FAQ entries and passages (:func:`load_documents`), and QA
files (CSV / SQuAD JSON) as typed records."""
from covidqa.data.documents import LoadedDocuments, load_documents
from covidqa.data.records import (
                              QA_CSV_COLUMNS,
                              QA_TEST_CSV_COLUMNS,
                              QADataError,
                              QARecord,
                              QARecords,
                              read_qa_csv,
                              read_qa_file,
                              read_squad_json,
                              write_qa_csv,
)
from toydata.faq import DEFAULT_FAQ_URL, check_faq_columns, default_faq_source, fetch, generate_qa

__all__ = ['generate_qa', 'load_documents', 'LoadedDocuments', 'check_faq_columns', 'fetch', 'DEFAULT_FAQ_URL', 'default_faq_source', 'QADataError', 'QARecord', 'QARecords',
           'read_qa_csv', 'read_squad_json', 'read_qa_file', 'write_qa_csv', 'QA_CSV_COLUMNS', 'QA_TEST_CSV_COLUMNS']
