"""The Flow's gateway: jina's own servers for every protocol (gRPC, HTTP, WebSocket), plus, on the HTTP side, the
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
import json
import logging
from pathlib import Path

from jina.enums import ProtocolType
from jina.parsers.helper import _get_gateway_class
from jina.serve.runtimes.gateway.gateway import BaseGateway
from jina.serve.runtimes.gateway.grpc import GRPCGateway
from jina.serve.runtimes.gateway.http import HTTPGateway
from jina.serve.runtimes.servers.composite import CompositeBaseServer

from executors.access import LOOPBACK, bind_host, check_size, check_token, service_token

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


def _count_docs(body: bytes) -> int:
    """Documents in a JSON request body (``data`` a list: its length; one document otherwise; 0 if unparsable,
    which FastAPI refuses with 422 anyway)."""
    try:
        data = json.loads(body).get('data') if body else None
    except (ValueError, AttributeError):
        return 0
    return len(data) if isinstance(data, list) else int(data is not None)


def add_access_checks(app, token):
    """Refuse, before anything runs: writes without the token (401) and requests over the size limits (413), as
    :mod:`executors.access` decides. Returns the app."""
    from fastapi.responses import JSONResponse

    @app.middleware('http')
    async def _access(request, call_next):
        if request.method != 'POST':
            return await call_next(request)
        endpoint = request.url.path
        refusal = check_token(endpoint, request.headers.get('authorization'), token)
        if refusal is None:
            length = request.headers.get('content-length', '')
            refusal = check_size(endpoint, 0, int(length) if length.isdigit() else None)
        if refusal is None:
            body = await request.body()
            refusal = check_size(endpoint, _count_docs(body), len(body))
        if refusal is not None:
            return JSONResponse({'detail': refusal.message}, status_code=refusal.http_status)
        return await call_next(request)

    return app


def guard_grpc_handler(handler, token):
    """Wrap jina's gRPC request handler so that every DataRequest of the ``Call`` stream and of
    ``process_single_data`` passes :func:`check_token` (metadata ``authorization``) and :func:`check_size` first;
    a refused request ends the call with UNAUTHENTICATED / RESOURCE_EXHAUSTED and the message."""
    import grpc

    codes = {401: grpc.StatusCode.UNAUTHENTICATED, 413: grpc.StatusCode.RESOURCE_EXHAUSTED}

    def refusal_of(request, context):
        metadata = dict(context.invocation_metadata() or ()) if context is not None else {}
        endpoint = request.header.exec_endpoint or '/'
        refusal = check_token(endpoint, metadata.get('authorization'), token)
        if refusal is None:
            refusal = check_size(endpoint, len(request.docs), request.proto.ByteSize())
        return refusal

    original_stream, original_single = handler.stream, handler.process_single_data

    async def stream(request_iterator, context=None, *args, **kwargs):
        async def checked():
            async for request in request_iterator:
                refusal = refusal_of(request, context)
                if refusal is not None:
                    await context.abort(codes[refusal.http_status], refusal.message)
                yield request

        async for response in original_stream(checked(), context, *args, **kwargs):
            yield response

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


class LabelerHTTPGateway(HTTPGateway):
    """jina's HTTP gateway with the labeler page and client-error status codes."""

    @property
    def app(self):
        app = add_status_codes(add_labeler_routes(super().app), getattr(self, 'logger', None))
        return add_access_checks(app, service_token())


class GuardedGRPCGateway(GRPCGateway):
    """jina's gRPC gateway with the token and size checks of :mod:`executors.access`."""

    async def setup_server(self):
        guard_grpc_handler(self._request_handler, service_token())
        await super().setup_server()


class LabelerGateway(CompositeBaseServer, BaseGateway):
    """One server per (protocol, port): jina's gRPC / WebSocket gateways, and :class:`LabelerHTTPGateway` for HTTP."""

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
            else:
                server_cls = _get_gateway_class(protocol, works_as_load_balancer=self.works_as_load_balancer)
            self.servers.append(server_cls(**server_kwargs))
        self.gateways = self.servers  # jina's name for them
