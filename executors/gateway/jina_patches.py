"""Every place where the gateway reaches into jina's (or Starlette's) private attributes, and only here.

jina 3.34 has no public hook for what the gateway adds (a result handler that records searches, the schema check
along each endpoint's own path, sharing the discovered endpoints between per-request graph copies, the servers of a
composite gateway). Each use is one small function, named for what it does, that fails loudly with
:class:`JinaChanged` when the attribute is gone; ``tests/unit/test_jina_patches.py`` checks, against the pinned
jina, that every attribute named in :data:`PRIVATE_ATTRIBUTES` still exists where these functions look for it.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

# (module, class or '' for the module itself, attribute): what the functions below read or replace; the attribute
# is a member of the class (or module), or assigned as ``self.<attribute>`` in its source
PRIVATE_ATTRIBUTES = (
    ('jina.serve.runtimes.servers', 'BaseServer', '_request_handler'),
    ('jina.serve.runtimes.servers.composite', 'CompositeBaseServer', '_server_kwargs'),
    ('jina.serve.runtimes.gateway.streamer', 'GatewayStreamer', '_streamer'),
    ('jina.serve.runtimes.gateway.streamer', 'GatewayStreamer', '_validate_flow_docarray_compatibility'),
    ('jina.serve.stream', 'RequestStreamer', '_result_handler'),
    ('jina.serve.runtimes.gateway.graph.topology_graph', 'TopologyGraph._ReqReplyNode', '_pydantic_models_by_endpoint'),
    ('jina.serve.runtimes.gateway.graph.topology_graph', 'TopologyGraph._ReqReplyNode', '_endpoints_proto'),
    ('jina.parsers.helper', '', '_get_gateway_class'),
    ('starlette.requests', 'Request', '_body'),
)


class JinaChanged(RuntimeError):
    """jina no longer has an attribute the gateway relies on (a jina upgrade): the message names it."""


def request_handler(server) -> Any:
    """The request handler of one of jina's gateway servers (``GRPCGateway``, ``HTTPGateway``)."""
    try:
        return server._request_handler
    except AttributeError:
        raise JinaChanged('jina gateway servers have no _request_handler') from None


def server_kwargs(composite) -> List[Dict[str, Any]]:
    """The per-(protocol, port) keyword arguments a composite gateway builds its servers from."""
    try:
        return composite._server_kwargs
    except AttributeError:
        raise JinaChanged('jina CompositeBaseServer has no _server_kwargs') from None


def gateway_class(protocol, works_as_load_balancer: bool):
    """jina's own gateway server class for ``protocol``."""
    from jina.parsers.helper import _get_gateway_class

    return _get_gateway_class(protocol, works_as_load_balancer=works_as_load_balancer)


def _inner_streamer(handler) -> Any:
    streamer = getattr(getattr(handler, 'streamer', None), '_streamer', None)
    if streamer is None or not hasattr(streamer, '_result_handler'):
        raise JinaChanged('jina changed its gateway streamer (no _streamer._result_handler): searches would go '
                          'unrecorded and feedback refused')
    return streamer


def result_handler(handler) -> Callable:
    """The function jina's streamer passes every reply through before it leaves (gRPC and HTTP alike)."""
    return _inner_streamer(handler)._result_handler


def replace_result_handler(handler, new: Callable) -> None:
    """Make ``new`` the streamer's result handler (see :func:`result_handler`)."""
    _inner_streamer(handler)._result_handler = new


def replace_flow_check(handler, check: Callable[[], None]) -> None:
    """Run ``check`` instead of jina's start-up schema check of the Flow (called after endpoint discovery); no-op
    for a handler without a streamer (a load balancer)."""
    streamer = getattr(handler, 'streamer', None)
    if streamer is None:
        return
    if not hasattr(streamer, '_validate_flow_docarray_compatibility'):
        raise JinaChanged('jina GatewayStreamer has no _validate_flow_docarray_compatibility')
    streamer._validate_flow_docarray_compatibility = check


def endpoint_models(node) -> Optional[Dict[str, Dict[str, Any]]]:
    """A topology-graph node's pydantic models per endpoint (``{'/search': {'input': M, 'output': M}}``); ``None``
    for the gateway's end node."""
    try:
        return node._pydantic_models_by_endpoint
    except AttributeError:
        raise JinaChanged('jina topology nodes have no _pydantic_models_by_endpoint') from None


def discovered_endpoints(node) -> Any:
    """The reply of a node's endpoint discovery (a tuple holding a protobuf of every endpoint's schemas)."""
    return getattr(node, '_endpoints_proto', None)


def set_discovered_endpoints(node, value) -> None:
    node._endpoints_proto = value


def replay_body(request, body: bytes) -> None:
    """Let the endpoint read ``body``, already read by a middleware (Starlette replays a body it finds cached)."""
    request._body = body
