"""How requests find their Executors: the start-up schema check along each endpoint's own path, and the discovered
endpoints shared between jina's per-request copies of the topology graph."""
from executors.gateway import jina_patches


def comparable_schema(schema):
    """A JSON schema without its ``example`` entries (at any depth), for comparing two Executors' schemas."""
    if isinstance(schema, dict):
        return {k: comparable_schema(v) for k, v in schema.items() if k != 'example'}
    if isinstance(schema, list):
        return [comparable_schema(v) for v in schema]
    return schema


def check_routed_schemas(origin_nodes) -> None:
    """The schema check of a Flow whose Executors bind only the endpoints they serve.

    jina 3.34's own start-up check of the Flow (:func:`.jina_patches.replace_flow_check`) demands that every Executor
    expose every endpoint of the one before it (or a default endpoint), so an Executor with nothing to do for an
    endpoint had to bind a pass-through, and jina then sent every such request through its process: a gRPC hop for
    nothing. jina's gateway itself already skips an Executor that binds neither the endpoint nor a default
    (``_wait_previous_and_send``), so here the check follows each endpoint along the path its requests take: the
    input schema of an Executor at an endpoint must equal the output schema of the nearest Executor before it that
    binds the same endpoint. ``origin_nodes``: the topology graph's first nodes (the gateway's end node has no
    models and ends a path). Schemas are compared without their ``example`` values: the ``id`` field's example is
    a random id drawn once per process, so Executors in separate processes (the compose stack) never agree on it.
    Raises ``ValueError`` naming both Executors and the endpoint.
    """
    def walk(node, upstream: dict) -> None:
        models = jina_patches.endpoint_models(node)
        if models is None:
            return
        here = dict(upstream)
        for endpoint, model in models.items():
            before = upstream.get(endpoint)
            if before is not None and before[1] != comparable_schema(model['input'].schema()):
                raise ValueError(f'the output schema of {before[0]} at {endpoint} does not match the input schema of '
                                 f'{node.name} at {endpoint}')
            here[endpoint] = (node.name, comparable_schema(model['output'].schema()))
        for successor in node.outgoing_nodes:
            walk(successor, here)

    for origin in origin_nodes:
        walk(origin, {})


class _SharedTuple(tuple):
    """A tuple that ``copy.deepcopy`` shares instead of copying."""

    def __deepcopy__(self, memo):
        return self


def share_discovered_endpoints(topology_graph) -> None:
    """Let jina's per-request ``copy.deepcopy`` of the topology graph share each node's discovered endpoints.

    jina's gateway deep-copies its whole graph for every request (``_handle_request``), and each node keeps the
    reply of endpoint discovery: a protobuf with every endpoint's JSON schemas, ~2 ms of copying a request with
    this Flow's 4-7 nodes (a fifth of the gateway's CPU per ``/search``, measured with py-spy). It is set once at
    start-up and only read after that, so the copies can share it."""
    for node in topology_graph.all_nodes:
        discovered = jina_patches.discovered_endpoints(node)
        if isinstance(discovered, tuple) and not isinstance(discovered, _SharedTuple):
            jina_patches.set_discovered_endpoints(node, _SharedTuple(discovered))


def route_by_endpoint(request_handler) -> None:
    """Replace jina's chain check on the gateway's streamer by :func:`check_routed_schemas` (before the server
    is set up, which runs the check after endpoint discovery), then :func:`share_discovered_endpoints`."""
    streamer = getattr(request_handler, 'streamer', None)
    if streamer is not None:
        def check_then_share():
            check_routed_schemas(streamer.topology_graph.origin_nodes)
            share_discovered_endpoints(streamer.topology_graph)

        jina_patches.replace_flow_check(request_handler, check_then_share)
