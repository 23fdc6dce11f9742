"""The endpoints' parameter models: keys, bounds, defaults (None = the Executor's), refusals that name the key."""
import pytest

from covidqa.docs import DocList, QADoc
from executors._common import MAX_TEXT_CHARS, BadRequest, check_texts
from executors.parameters import (
    AnswerParameters,
    DeleteParameters,
    IndexParameters,
    NoParameters,
    QATrainParameters,
    RollbackParameters,
    RoundParameters,
    SearchParameters,
)


def test_values_are_checked_and_converted():
    params = AnswerParameters.parse({'limit': 3.0, 'top_k': 2, 'lexical_weight': 0, 'context_field': 'text',
                                     '__results__': {'indexer': {}}}, '/answer')  # jina's own keys are ignored
    assert (params.limit, params.top_k, params.lexical_weight, params.context_field) == (3, 2, 0.0, 'text')
    assert params.max_seq_length is None and params.no_answer_threshold is None  # None: the Executor's default
    assert SearchParameters.parse(None).limit is None
    assert RollbackParameters.parse({'version': 0.0}).version == 0
    assert RoundParameters.parse({'wait': True, 'timeout': 5}).timeout == 5.0


@pytest.mark.parametrize('model, parameters, message', [
    (SearchParameters, {'limt': 3}, "unknown parameter(s) ['limt'] for /x; known parameters: ['batch_size', 'bm25_weight', "
                                    "'collection', 'limit', 'max_length', 'retrieval']"),
    (SearchParameters, {'retrieval': 'sparse'}, "parameter 'retrieval' must be one of ('dense', 'lexical', 'hybrid'), "
                                                "got 'sparse'"),
    (SearchParameters, {'bm25_weight': 1.5}, "parameter 'bm25_weight' must be a number between 0.0 and 1.0, got 1.5"),
    (SearchParameters, {'top_k': 3}, "unknown parameter(s) ['top_k'] for /x"),  # a reader key is not a /search key
    (SearchParameters, {'limit': -1}, "parameter 'limit' must be an integer between 1 and 1000, got -1"),
    (SearchParameters, {'limit': 'ten'}, "parameter 'limit' must be an integer between 1 and 1000, got 'ten'"),
    (SearchParameters, {'limit': True}, "parameter 'limit' must be an integer between 1 and 1000, got True"),
    (SearchParameters, {'limit': 2.5}, "parameter 'limit' must be an integer between 1 and 1000, got 2.5"),
    (IndexParameters, {'max_length': 513}, "parameter 'max_length' must be an integer between 1 and 512"),
    (AnswerParameters, {'top_k': 0}, "parameter 'top_k' must be an integer between 1 and 1000, got 0"),
    (AnswerParameters, {'lexical_weight': -1}, "parameter 'lexical_weight' must be a number between 0.0 and 100.0"),
    (AnswerParameters, {'no_answer_threshold': 1.5}, "'no_answer_threshold' must be a number between 0.0 and 1.0"),
    (AnswerParameters, {'context_field': 'body'}, "parameter 'context_field' must be one of ('auto', 'answer', "
                                                  "'text'), got 'body'"),
    (NoParameters, {'foo': 1}, "unknown parameter(s) ['foo'] for /x; known parameters: none"),
    (SearchParameters, {'collection': 'papers'}, "parameter 'collection' must be one of ('auto', 'all', 'faq', "
                                                 "'literature'), got 'papers'"),
    (DeleteParameters, {'documents': 'all'}, "parameter 'documents' must be true or false, got 'all'"),
    (RoundParameters, {'wait': 'yes'}, "parameter 'wait' must be true or false, got 'yes'"),
    (RoundParameters, {'timeout': 0}, "parameter 'timeout' must be a number between 1 and 3600, got 0"),
    (RollbackParameters, {'version': -1}, "parameter 'version' must be an integer between 0 and 1000000"),
    (QATrainParameters, {'file': ''}, "parameter 'file' must be a file name under the data directory, got ''"),
    (QATrainParameters, {'args': [1]}, "parameter 'args' must be an object of training arguments, got [1]"),
    (QATrainParameters, {'start_from': 'x'}, "parameter 'start_from' must be one of ('current', 'base'), got 'x'"),
])
def test_bad_parameters_are_refused_by_name(model, parameters, message):
    with pytest.raises(BadRequest) as error:
        model.parse(parameters, '/x')
    assert message in str(error.value)


def test_every_bad_key_is_named_at_once():
    with pytest.raises(BadRequest) as error:
        AnswerParameters.parse({'limit': 0, 'top_k': 0})
    assert "'limit' must be" in str(error.value) and "'top_k' must be" in str(error.value)


@pytest.mark.parametrize('texts, message', [
    ([], '/search: no documents: send at least one document with a text'),  # {"data": []} was a 500
    (['ok', '  '], '/search: document 1 (id=d1) has an empty text'),
    (['x' * (MAX_TEXT_CHARS + 1)], f'has {MAX_TEXT_CHARS + 1} characters; the limit is {MAX_TEXT_CHARS}'),
])
def test_texts_are_checked_before_any_model_runs(texts, message):
    docs = DocList[QADoc]([QADoc(id=f'd{i}', text=t) for i, t in enumerate(texts)])
    with pytest.raises(BadRequest) as refused:
        check_texts(docs, '/search')
    assert message in str(refused.value)
    check_texts(DocList[QADoc]([QADoc(text='x' * MAX_TEXT_CHARS)]), '/search')  # the limit itself passes


def test_the_readme_parameter_table_is_the_one_the_models_make():
    from executors.parameters import parameter_table
    from tests.helpers import REPO

    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    start, end = '<!-- parameters:start -->\n', '\n<!-- parameters:end -->'
    assert start in readme and end in readme
    shown = readme[readme.index(start) + len(start):readme.index(end)]
    assert shown == parameter_table(), 'README.md is out of date: paste `python -m executors.parameters` there'


def test_request_parameters_keep_the_bounds_of_the_settings_they_override():
    """One declaration: a parameter overriding a library setting has that setting's bounds (OpenAPI shows them)."""
    from covidqa.embedding.options import EmbedOptions
    from covidqa.index.options import SearchOptions
    from covidqa.options import bounds_of
    from covidqa.reader.options import REQUEST_OPTIONS, ReadOptions

    checked = 0
    for model in (IndexParameters, SearchParameters, AnswerParameters):
        for name, schema in model.model_json_schema()['properties'].items():
            setting = schema.get('x-setting')
            if setting is None:
                continue
            owner = {'ReadOptions': ReadOptions, 'SearchOptions': SearchOptions, 'EmbedOptions': EmbedOptions}[
                setting.split('.')[0]]
            extra = bounds_of(owner, name).extra
            assert (schema.get('minimum'), schema.get('maximum')) == (extra.get('minimum'), extra.get('maximum'))
            checked += 1
    assert set(REQUEST_OPTIONS) <= set(AnswerParameters.model_fields) and checked >= 15
    with pytest.raises(BadRequest, match="'max_seq_length' must be an integer between 32 and 512"):
        AnswerParameters.parse({'max_seq_length': 16}, '/answer')  # the reader's own bound, not a looser API one
