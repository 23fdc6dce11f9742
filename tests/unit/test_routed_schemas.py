"""check_routed_schemas: the gateway's per-endpoint schema check, on hand-made topology nodes."""
from types import SimpleNamespace

import pytest
from pydantic import create_model

from executors.gateway.routing import check_routed_schemas, comparable_schema


def model_with_example(example: str, text_type=str):
    """A pydantic model whose ``id`` carries ``example`` in its JSON schema, as docarray's ``id`` field does."""
    from pydantic import Field
    return create_model('Doc', id=(str, Field(default='x', examples=None, json_schema_extra={'example': example})),
                        text=(text_type, ''))


def node(name, endpoints, successors=()):
    return SimpleNamespace(name=name, _pydantic_models_by_endpoint=endpoints, outgoing_nodes=list(successors))


def chain(first_model, second_model):
    end = node('end', None)
    second = node('second', {'/index': {'input': second_model, 'output': second_model}}, [end])
    return [node('first', {'/index': {'input': first_model, 'output': first_model}}, [second])]


def test_schemas_that_differ_only_in_their_example_id_match():
    # two processes draw two example ids for the same document type
    check_routed_schemas(chain(model_with_example('aaaa'), model_with_example('bbbb')))


def test_a_changed_field_type_is_refused_naming_both_executors_and_the_endpoint():
    with pytest.raises(ValueError, match='first at /index does not match the input schema of second at /index'):
        check_routed_schemas(chain(model_with_example('aaaa'), model_with_example('aaaa', text_type=int)))


def test_an_executor_without_the_endpoint_is_skipped():
    end = node('end', None)
    third = node('third', {'/index': {'input': model_with_example('c'), 'output': model_with_example('c')}}, [end])
    middle = node('middle', {'/search': {'input': model_with_example('m', int), 'output': model_with_example('m', int)}},
                  [third])
    first = node('first', {'/index': {'input': model_with_example('a'), 'output': model_with_example('a')}}, [middle])
    check_routed_schemas([first])


def test_comparable_schema_drops_examples_at_any_depth():
    schema = {'example': 1, 'properties': {'id': {'example': 'x', 'type': 'string'}}, 'l': [{'example': 2, 'a': 1}]}
    assert comparable_schema(schema) == {'properties': {'id': {'type': 'string'}}, 'l': [{'a': 1}]}
