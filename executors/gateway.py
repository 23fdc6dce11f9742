"""The Flow's gateway: jina's own gRPC and HTTP servers (no WebSocket: it has no access checks), plus, on the HTTP side, the
labeler page at ``GET /labeler`` and status codes that tell client errors from server faults.

Status codes: jina's HTTP gateway answers every failed request with 500, whatever failed. Here a request refused
because of what the client sent (an Executor raised :class:`executors._common.BadRequest`, or a request parameter
failed its pydantic model) is **400** with the same ``detail`` message; a body that does not parse stays FastAPI's
**422**; anything else stays **500** and is logged with the request id. Over gRPC the reply header carries the
exception's class name (``header.status.exception.name``: ``BadRequest`` for a client error), so gRPC clients tell
the two apart the same way.

Access: writes need the service token when ``$COVIDQA_TOKEN`` is set, every request is held to the document and
byte limits, and without a token the gateway listens on 127.0.0.1 only (:mod:`executors.access`; HTTP: a middleware
answering 401 / 413; gRPC: :class:`GuardedGRPCGateway` ends the call with UNAUTHENTICATED / RESOURCE_EXHAUSTED).

The labeler page at ``GET /labeler`` (the page of :mod:`executors.finetuner`: it calls ``POST /search``, ``/feedback``,
``/status``, ``/train``, ``/save_model`` and ``/rollback`` of the same HTTP server).

jina 3.34 has no setting for extra HTTP routes, so :class:`LabelerGateway` is a custom gateway in the mould of
jina's ``CompositeGateway``: one server per (protocol, port) pair, the HTTP one being jina's ``HTTPGateway`` whose
FastAPI app gets the extra routes. Everything else (the endpoints of the Executors, ``/docs``, health checks,
``/dry_run``) is jina's. In flow.yml::

    gateway:
      uses: LabelerGateway
      py_modules: [executors/gateway.py]
      protocol: [grpc, http]
      port: [54321, 8080]

or in Python: ``Flow(protocol=['grpc', 'http'], port=[p1, p2]).config_gateway(uses='LabelerGateway',
py_modules=['executors/gateway.py'])``.
"""
import functools
import json
import logging
from pathlib import Path
from typing import Optional

from jina.enums import ProtocolType
from jina.parsers.helper import _get_gateway_class
from jina.serve.runtimes.gateway.gateway import BaseGateway
from jina.serve.runtimes.gateway.grpc import GRPCGateway
from jina.serve.runtimes.gateway.http import HTTPGateway
from jina.serve.runtimes.servers.composite import CompositeBaseServer

from covidqa.feedback import SEARCHES_FILE
from covidqa.paths import feedback_dir
from covidqa.search_log import ROTATE_BYTES, SearchLog, search_records_of
from executors.access import (
    LOOPBACK,
    MAX_REQUEST_BYTES,
    Refusal,
    bind_host,
    check_endpoint,
    check_size,
    check_token,
    normalise,
    positive_env,
    service_token,
)

LABELER_DIR = Path(__file__).resolve().parent / 'labeler'
LABELER_PATH = '/labeler'


# ``repr()`` of the exceptions that mean "the client sent something wrong" (jina puts ``repr(exception)`` into the
# error detail): the Executors' BadRequest, and pydantic's ValidationError for typed request parameters.
CLIENT_ERROR_PREFIXES = ('BadRequest(', 'ValidationError(', '1 validation error', 'ValidationError:')


def is_client_error(detail) -> bool:
    """Whether a failed request's ``detail`` (jina's ``repr(exception)`` of the Executor's error) is a client error."""
    return isinstance(detail, str) and detail.lstrip().startswith(CLIENT_ERROR_PREFIXES)


def add_status_codes(app, logger=None):
    """Make a FastAPI app answer client errors with 400 instead of jina's blanket 500 (see the module docstring);
    server faults stay 500 and are logged. Returns the app."""
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(HTTPException)
    async def _status_of(request, exc):
        if exc.status_code == 500 and is_client_error(exc.detail):
            return JSONResponse({'detail': exc.detail}, status_code=400)
        if exc.status_code >= 500 and logger is not None:
            request_id = request.headers.get('x-request-id', '-')
            logger.error(f'{request.method} {request.url.path} failed with {exc.status_code} '
                         f'(request id {request_id}): {exc.detail}')
        return await http_exception_handler(request, exc)

    return app


def _refuse_constant(name: str):
    raise ValueError(f'{name} is not a number JSON allows')


MAX_JSON_DEPTH = 64  # a request is ~6 levels deep (data, a document, its matches, their answers); jina and
# pydantic recurse per level, and Python's JSON parser fails past ~1,000 levels


def json_depth_over(value, limit: int) -> bool:
    """Whether a parsed JSON ``value`` nests more than ``limit`` arrays/objects deep (iterative: any depth)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _body_refusal(endpoint: str, body: bytes):
    """Check a JSON request body: a body that does not parse as JSON, nests deeper than :data:`MAX_JSON_DEPTH` or
    carries NaN/Infinity is refused with a 400 naming the problem (jina would fail on them with a 500); the number
    of documents (``data`` a list: its length; one document otherwise) must be within the limit. A body that parses
    but does not fit the endpoint's request model is left to FastAPI (422, naming the field)."""
    try:
        parsed = json.loads(body, parse_constant=_refuse_constant) if body else None
    except RecursionError:
        return Refusal(400, f'{endpoint}: the JSON body nests deeper than {MAX_JSON_DEPTH} levels')
    except ValueError as error:
        if 'not a number JSON allows' in str(error):
            return Refusal(400, f'{endpoint}: {error} (the request carries NaN or Infinity)')
        return Refusal(400, f'{endpoint}: the body is not valid JSON ({error})')
    if json_depth_over(parsed, MAX_JSON_DEPTH):
        return Refusal(400, f'{endpoint}: the JSON body nests deeper than {MAX_JSON_DEPTH} levels')
    data = parsed.get('data') if isinstance(parsed, dict) else None
    return check_size(endpoint, len(data) if isinstance(data, list) else int(data is not None), len(body))


DRAIN_BYTES = 8 * MAX_REQUEST_BYTES  # a refused body up to this size is read (and dropped) before the reply


async def _read_bounded(request, limit: int):
    """The request body, or None when it passes ``limit`` bytes (a chunked body has no Content-Length); the
    rest of an oversized body is read and dropped, up to :data:`DRAIN_BYTES` (see :func:`_drain`)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN_BYTES:
            return None
        if size <= limit:
            chunks.append(chunk)
    return b''.join(chunks) if size <= limit else None


async def _drain(request, declared: Optional[int]) -> None:
    """Read and drop the body of a refused request, at most :data:`DRAIN_BYTES` (a declared length over it:
    nothing is read). A client that sends its whole body before it reads the reply (urllib, requests) then
    gets the 4xx; closing with the body unread makes its kernel see a connection reset instead."""
    if declared is not None and declared > DRAIN_BYTES:
        return
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > DRAIN_BYTES:
                return
    except Exception:  # read already (the body check ran), or the client went away
        return


def add_access_checks(app, token):
    """Refuse, before anything runs: writes without the token (401) and requests over the size limits (413), as
    :mod:`executors.access` decides. Returns the app."""
    from fastapi.responses import JSONResponse

    @app.middleware('http')
    async def _access(request, call_next):
        if request.method in ('GET', 'HEAD', 'OPTIONS'):
            return await call_next(request)
        endpoint = normalise(request.url.path)
        length = request.headers.get('content-length', '')
        declared = int(length) if length.isdigit() else None
        refusal = check_token(endpoint, request.headers.get('authorization'), token)
        if refusal is None:
            refusal = check_size(endpoint, 0, declared)
        if refusal is None:
            body = await _read_bounded(request, MAX_REQUEST_BYTES)
            if body is None:
                refusal = check_size(endpoint, 0, MAX_REQUEST_BYTES + 1)
            else:
                request._body = body  # what the endpoint reads (Starlette replays a body read in a middleware)
                refusal = _body_refusal(endpoint, body)
        if refusal is not None:
            await _drain(request, declared)
            return JSONResponse({'detail': refusal.message}, status_code=refusal.http_status)
        return await call_next(request)

    return app


def request_facts(request):
    """``(endpoint, documents, bytes)`` of a jina ``DataRequest`` on the hot path: the size from the received
    buffer, the documents counted in the protobuf message (parsed once; jina reuses it) without building the
    DocList (pydantic validation of every document) unless they came as one ``docs_bytes`` blob."""
    buffer = getattr(request, 'buffer', None)
    size = len(buffer) if buffer else None
    proto = request.proto_with_data
    if size is None:
        size = proto.ByteSize()
    content = proto.data
    docs = len(request.docs) if content.WhichOneof('documents') == 'docs_bytes' else len(content.docs.docs)
    return proto.header.exec_endpoint or '/', docs, size


def parameters_refusal(endpoint: str, request):
    """A 400 when a DataRequest's parameters cannot be read: a protobuf ``Struct`` carries NaN and Infinity as
    doubles, and jina's ``MessageToDict`` fails on them (a server error otherwise); None when they can."""
    try:
        request.parameters
    except ValueError as error:
        return Refusal(400, f'{endpoint}: {error} (the request carries NaN or Infinity)')
    return None


def guard_grpc_handler(handler, token):
    """Wrap jina's gRPC request handler so that every DataRequest of the ``Call`` stream and of
    ``process_single_data`` passes :func:`check_token` (metadata ``authorization``) and :func:`check_size` first;
    a refused request ends the call with UNAUTHENTICATED / RESOURCE_EXHAUSTED and the message."""
    import grpc

    codes = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
             404: grpc.StatusCode.NOT_FOUND, 413: grpc.StatusCode.RESOURCE_EXHAUSTED}

    def refusal_of(request, context):
        metadata = dict(context.invocation_metadata() or ()) if context is not None else {}
        try:
            endpoint, docs, size = request_facts(request)
        except Exception as error:  # bytes that are no jina DataRequest (protobuf DecodeError, ...)
            return Refusal(400, f'the request is not a jina DataRequest: {type(error).__name__}: {error}')
        refusal = check_token(endpoint, metadata.get('authorization'), token)
        return refusal or check_endpoint(endpoint) or check_size(endpoint, docs, size) or parameters_refusal(
            endpoint, request)

    original_stream, original_single = handler.stream, handler.process_single_data

    async def stream(request_iterator, context=None, *args, **kwargs):
        refused = []

        async def checked():  # ends the stream at the first refused request (aborting here would leave jina's
            async for request in request_iterator:  # streamer with a task that blocks the gateway's shutdown)
                refusal = refusal_of(request, context)
                if refusal is not None:
                    refused.append(refusal)
                    return
                yield request

        async for response in original_stream(checked(), context, *args, **kwargs):
            yield response
        if refused:  # the requests before it were answered; the call ends with the refusal
            await context.abort(codes[refused[0].http_status], refused[0].message)

    async def process_single_data(request, context=None):
        refusal = refusal_of(request, context)
        if refusal is not None:
            await context.abort(codes[refusal.http_status], refusal.message)
        return await original_single(request, context)

    handler.stream = handler.Call = stream
    handler.process_single_data = process_single_data
    return handler


def add_labeler_routes(app):
    """Add ``GET /labeler`` (the page) and ``GET /labeler/`` (redirect) to a FastAPI app; returns the app."""
    from fastapi.responses import HTMLResponse, RedirectResponse

    @app.get(LABELER_PATH, include_in_schema=False)
    async def _labeler_page():
        # read per request: the page is small, and an edited page shows without a restart
        html = (LABELER_DIR / 'index.html').read_text(encoding='utf-8')
        return HTMLResponse(html, headers={'Cache-Control': 'no-store'})

    @app.get(LABELER_PATH + '/', include_in_schema=False)
    async def _labeler_slash():
        return RedirectResponse(LABELER_PATH)

    return app


def comparable_schema(schema):
    """A JSON schema without its ``example`` entries (at any depth), for comparing two Executors' schemas."""
    if isinstance(schema, dict):
        return {k: comparable_schema(v) for k, v in schema.items() if k != 'example'}
    if isinstance(schema, list):
        return [comparable_schema(v) for v in schema]
    return schema


def check_routed_schemas(origin_nodes) -> None:
    """The schema check of a Flow whose Executors bind only the endpoints they serve.

    jina 3.34's own check (``TopologyGraph._validate_flow_docarray_compatibility``) demands that every Executor
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
        models = node._pydantic_models_by_endpoint
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
        discovered = getattr(node, '_endpoints_proto', None)
        if isinstance(discovered, tuple) and not isinstance(discovered, _SharedTuple):
            node._endpoints_proto = _SharedTuple(discovered)


SEARCH_ENDPOINT = '/search'


@functools.lru_cache(maxsize=None)
def gateway_search_log() -> SearchLog:
    """The search log this gateway process writes (``$COVIDQA_HOME/feedback/searches.jsonl``; one for its gRPC and
    HTTP servers), opened as its one writer on first use; rotated past ``$COVIDQA_SEARCH_LOG_BYTES`` (default
    :data:`covidqa.search_log.ROTATE_BYTES`, 64 MiB)."""
    return SearchLog(feedback_dir() / SEARCHES_FILE, writer=True,
                     max_bytes=positive_env('COVIDQA_SEARCH_LOG_BYTES', ROTATE_BYTES))


def _reply_documents(result):
    """The documents of a reply as docarray's ``DocListProto`` (jina keeps them parsed or as bytes)."""
    content = result.proto_with_data.data
    if content.WhichOneof('documents') == 'docs_bytes':
        from docarray.proto import DocListProto

        return DocListProto.FromString(content.docs_bytes)
    return content.docs


def log_searches(request_handler, search_log: SearchLog, logger=None) -> None:
    """Write what every successful ``/search`` reply shows into ``search_log``, just before the reply leaves.

    Feedback is checked against what was shown (:mod:`covidqa.feedback`), so every search must be recorded. The
    finetuner used to record it as the last Executor of ``/search``: a gRPC hop with ~4 ms of decoding and
    re-encoding the matches per request. Here jina's result handler (the one step every reply of this server takes,
    gRPC and HTTP alike; wrapped once even where both servers share it) reads the ids and texts straight from the
    reply's protobuf (:func:`covidqa.search_log.search_records_of`, ~20 us) and appends them with one write. The log line is written
    before the client gets its reply, so feedback sent right after a search finds it. A failed write is logged and
    the search still answered (its feedback will be refused as 'never searched')."""
    from jina.proto import jina_pb2

    streamer = getattr(getattr(request_handler, 'streamer', None), '_streamer', None)
    if streamer is None or not hasattr(streamer, '_result_handler'):
        raise RuntimeError('jina changed its gateway streamer: searches would go unrecorded and feedback refused')
    handle = streamer._result_handler
    if getattr(handle, 'logs_searches', False):
        return  # the gRPC and HTTP servers of one gateway can share a streamer: log once

    def handle_and_log(result):
        response = handle(result)
        try:
            header = result.header
            if header.exec_endpoint == SEARCH_ENDPOINT and header.status.code == jina_pb2.StatusProto.SUCCESS:
                search_log.append_all(search_records_of(_reply_documents(result)))
        except Exception as error:  # recording must never fail the search itself
            if logger is not None:
                logger.error(f'could not log a /search reply into {search_log.path}: {error!r}')
        return response

    handle_and_log.logs_searches = True  # type: ignore[attr-defined]
    streamer._result_handler = handle_and_log


def route_by_endpoint(request_handler) -> None:
    """Replace jina's chain check on the gateway's streamer by :func:`check_routed_schemas` (before the server
    is set up, which runs the check after endpoint discovery), then :func:`share_discovered_endpoints`."""
    streamer = getattr(request_handler, 'streamer', None)
    if streamer is not None:
        def check_then_share():
            check_routed_schemas(streamer.topology_graph.origin_nodes)
            share_discovered_endpoints(streamer.topology_graph)

        streamer._validate_flow_docarray_compatibility = check_then_share


class LabelerHTTPGateway(HTTPGateway):
    """jina's HTTP gateway with the labeler page and client-error status codes."""

    async def setup_server(self):
        route_by_endpoint(self._request_handler)
        log_searches(self._request_handler, gateway_search_log(), getattr(self, 'logger', None))
        await super().setup_server()

    @property
    def app(self):
        app = add_status_codes(add_labeler_routes(super().app), getattr(self, 'logger', None))
        return add_access_checks(app, service_token())


class GuardedGRPCGateway(GRPCGateway):
    """jina's gRPC gateway with the token and size checks of :mod:`executors.access`."""

    async def setup_server(self):
        route_by_endpoint(self._request_handler)
        log_searches(self._request_handler, gateway_search_log(), getattr(self, 'logger', None))
        guard_grpc_handler(self._request_handler, service_token())
        # refuse oversized messages while receiving them (jina's default is no limit); accept the keepalive pings
        # jina's clients send every 10 s: jina means to allow them, but its server options spell the keys
        # 'grpc.http1.*', which gRPC ignores, so gRPC's defaults (5 min, 2 strikes) apply. Seen once in CI: a
        # jina client whose call had hung for 120 s got GOAWAY 'too_many_pings' from this server, and a new jina
        # client in that process failed at once on the same (shared) connection. Not reproduced on demand (an idle
        # or a silent open stream of 45 s was not refused), so this only removes that way of failing.
        self.grpc_server_options = {**(self.grpc_server_options or {}),
                                    'grpc.max_receive_message_length': MAX_REQUEST_BYTES + 64 * 1024,
                                    'grpc.http2.min_recv_ping_interval_without_data_ms': 5000,
                                    'grpc.http2.max_ping_strikes': 0}
        await super().setup_server()


class LabelerGateway(CompositeBaseServer, BaseGateway):
    """One server per (protocol, port): :class:`GuardedGRPCGateway` for gRPC, :class:`LabelerHTTPGateway` for HTTP."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.servers = []
        token = service_token()
        log = getattr(self, 'logger', None) or logging.getLogger(__name__)
        if not token:
            log.warning('COVIDQA_TOKEN is not set: every endpoint, writes included, is open to whoever reaches the '
                        'gateway, so it serves on 127.0.0.1 only')
        for server_kwargs in self._server_kwargs:
            runtime_args = server_kwargs['runtime_args']
            protocol = runtime_args['protocol']
            if not isinstance(protocol, ProtocolType):
                protocol = ProtocolType.from_string(str(protocol))
            host = bind_host(runtime_args.get('host') or LOOPBACK, token)
            if host != runtime_args.get('host'):
                log.warning(f'COVIDQA_TOKEN is not set: the {protocol} gateway listens on {host}, not '
                            f'{runtime_args.get("host")} (set COVIDQA_TOKEN to serve other hosts; writes then need it)')
                runtime_args['host'] = host
            if protocol == ProtocolType.HTTP and not self.works_as_load_balancer:
                server_cls = LabelerHTTPGateway
            elif protocol == ProtocolType.GRPC and not self.works_as_load_balancer:
                server_cls = GuardedGRPCGateway
            elif protocol == ProtocolType.WEBSOCKET:
                raise ValueError('the websocket gateway has no token and size checks (executors/access.py): serve '
                                 'grpc and/or http')
            else:
                server_cls = _get_gateway_class(protocol, works_as_load_balancer=self.works_as_load_balancer)
            self.servers.append(server_cls(**server_kwargs))
        self.gateways = self.servers  # jina's name for them
