"""client/compose.py: every flow.yml setting reaches docker-compose.yml, or the generator refuses it by name."""
import json

import pytest
import yaml

from client.compose import COMMITTED_INDEX_SHARDS, ComposeError, apply_overrides, compose
from client.flowctl import REPO


def flow_file(tmp_path, **changes):
    flow = yaml.safe_load((REPO / 'flow.yml').read_text())
    for name, keys in changes.items():
        if name == 'with_':
            flow['with'].update(keys)
            continue
        executor = next(e for e in flow['executors'] if e['name'] == name)
        executor.update(keys)
    path = tmp_path / 'flow.yml'
    path.write_text(yaml.safe_dump(flow))
    return path


def arg(command, flag):
    return command[command.index(flag) + 1]


def test_flow_settings_reach_the_command_lines():
    flow = yaml.safe_load((REPO / 'flow.yml').read_text())
    services = compose()['services']
    for executor in flow['executors']:
        command = services[executor['name']]['command']
        assert arg(command, '--uses') == executor['uses']
        if executor.get('uses_with'):
            assert json.loads(arg(command, '--uses-with')) == executor['uses_with']
        else:
            assert '--uses-with' not in command
        assert ('--allow-concurrent' in command) == bool(executor.get('allow_concurrent'))
        assert arg(command, '--host') == '0.0.0.0' and 'ports' not in services[executor['name']]
    assert '--allow-concurrent' in services['finetuner']['command']
    gateway = services['gateway']
    assert gateway['command'][gateway['command'].index('--protocol') + 1:][:2] == ['grpc', 'http']
    assert '--cors' in gateway['command'] and arg(gateway['command'], '--title') == flow['with']['title']
    assert gateway['ports'] == ['127.0.0.1:${COVIDQA_GRPC_HOST_PORT:-54321}:54321',
                                '127.0.0.1:${COVIDQA_HTTP_HOST_PORT:-8080}:8080']
    assert gateway['environment']['COVIDQA_TOKEN'].startswith('${COVIDQA_TOKEN:?')  # required: see bind_host
    assert all(s['init'] is True for s in services.values())


def test_shards_get_a_head_with_their_polling_and_the_merger_follows():
    services = compose(index_shards=COMMITTED_INDEX_SHARDS)['services']
    head = services['indexer-head']['command']
    assert json.loads(arg(head, '--connection-list')) == {'0': ['indexer-0:8081'], '1': ['indexer-1:8081']}
    assert json.loads(arg(head, '--polling'))['/search'] == 'ALL'
    assert '--uses-after-address' not in head
    for shard in (0, 1):
        command = services[f'indexer-{shard}']['command']
        assert arg(command, '--shard-id') == str(shard) and arg(command, '--shards') == '2'
    gateway = services['gateway']['command']
    assert json.loads(arg(gateway, '--deployments-addresses'))['indexer'] == ['indexer-head:8081']
    graph = json.loads(arg(gateway, '--graph-description'))
    assert graph['indexer'] == ['merger'] and graph['merger'] == ['reader']  # README, Sharding
    assert arg(services['merger']['command'], '--uses') == 'MatchMerger'


def test_uses_after_of_a_sharded_executor_is_a_service_of_its_own(tmp_path):
    path = flow_file(tmp_path, indexer={'shards': 2, 'uses_after': {'jtype': 'MatchMerger',
                                                                    'py_modules': ['executors/merger.py']}})
    services = compose(path)['services']
    assert arg(services['indexer-head']['command'], '--uses-after-address') == 'indexer-uses-after:8081'
    assert arg(services['indexer-uses-after']['command'], '--uses') == 'MatchMerger'


def test_replicas_are_services_the_gateway_balances(tmp_path):
    services = compose(flow_file(tmp_path, embedder={'replicas': 2}))['services']
    assert {'embedder-rep-0', 'embedder-rep-1'} <= set(services) and 'embedder' not in services
    addresses = json.loads(arg(services['gateway']['command'], '--deployments-addresses'))
    assert addresses['embedder'] == ['embedder-rep-0:8081', 'embedder-rep-1:8081']


def test_needs_and_when_become_the_gateway_graph(tmp_path):
    path = flow_file(tmp_path, reader={'needs': 'indexer', 'when': {'tags__x': {'$eq': 1}}},
                     finetuner={'needs': ['indexer']})
    command = compose(path)['services']['gateway']['command']
    graph = json.loads(arg(command, '--graph-description'))
    # as jina's Flow builds it: only the last Executor that is not floating ends at the gateway
    assert graph['indexer'] == ['reader', 'finetuner'] and graph['finetuner'] == ['end-gateway']
    assert graph['reader'] == []
    assert json.loads(arg(command, '--graph-conditions')) == {'reader': {'tags__x': {'$eq': 1}}}


def test_a_floating_executor_has_no_outgoing_edge_and_the_next_one_chains_after_the_last_other(tmp_path):
    flow = yaml.safe_load((REPO / 'flow.yml').read_text())
    at = next(i for i, e in enumerate(flow['executors']) if e['name'] == 'indexer')
    flow['executors'].insert(at + 1, {'name': 'audit', 'uses': 'MatchMerger', 'py_modules': ['executors/merger.py'],
                                      'floating': True, 'needs': 'indexer'})
    path = tmp_path / 'flow.yml'
    path.write_text(yaml.safe_dump(flow))
    for shards, upstream in ((1, 'indexer'), (2, 'merger')):
        graph = json.loads(arg(compose(path, index_shards=shards)['services']['gateway']['command'],
                               '--graph-description'))
        assert graph[upstream] == ['audit', 'reader'] and graph['audit'] == []  # jina's gateway does not wait
        assert graph['reader'] == ['finetuner'] and graph['finetuner'] == ['end-gateway']


@pytest.mark.parametrize('changes, named', [
    ({'indexer': {'timeout_ready': 5000}}, "['timeout_ready']"),
    ({'with_': {'monitoring': True}}, "['monitoring']"),
    ({'reader': {'host': '10.0.0.7'}}, "'10.0.0.7'"),
    ({'reader': {'uses_after': 'X'}}, 'shards > 1'),
    ({'reader': {'needs': 'nobody'}}, "'nobody'"),
    ({'with_': {'port': [54321]}}, 'ports [54321]'),
])
def test_what_compose_cannot_express_is_refused_by_name(tmp_path, changes, named):
    with pytest.raises(ComposeError, match=named.replace('[', r'\[').replace(']', r'\]').replace('.', r'\.')):
        compose(flow_file(tmp_path, **changes))


def test_overrides():
    flow = {'executors': [{'name': 'indexer', 'uses': 'Indexer'}]}
    assert apply_overrides(flow, ['indexer.shards=2'])['executors'][0]['shards'] == 2
    assert 'shards' not in flow['executors'][0]  # a copy
    with pytest.raises(ComposeError, match="no Executor 'idx'"):
        apply_overrides(flow, ['idx.shards=2'])
    with pytest.raises(ComposeError, match='NAME.KEY=VALUE'):
        apply_overrides(flow, ['shards=2'])
