"""The Flow's gateway: jina's own servers for every protocol (gRPC, HTTP, WebSocket), plus, on the HTTP side, the
labeler page at ``GET /labeler`` and status codes that tell client errors from server faults.

Status codes: jina's HTTP gateway answers every failed request with 500, whatever failed. Here a request refused
because of what the client sent (an Executor raised :class:`executors._common.BadRequest`, or a request parameter
failed its pydantic model) is **400** with the same ``detail`` message; a body that does not parse stays FastAPI's
**422**; anything else stays **500** and is logged with the request id. Over gRPC the reply header carries the
exception's class name (``header.status.exception.name``: ``BadRequest`` for a client error), so gRPC clients tell
the two apart the same way.

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
from pathlib import Path

from jina.enums import ProtocolType
from jina.parsers.helper import _get_gateway_class
from jina.serve.runtimes.gateway.gateway import BaseGateway
from jina.serve.runtimes.gateway.http import HTTPGateway
from jina.serve.runtimes.servers.composite import CompositeBaseServer

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
        return add_status_codes(add_labeler_routes(super().app), getattr(self, 'logger', None))


class LabelerGateway(CompositeBaseServer, BaseGateway):
    """One server per (protocol, port): jina's gRPC / WebSocket gateways, and :class:`LabelerHTTPGateway` for HTTP."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.servers = []
        for server_kwargs in self._server_kwargs:
            protocol = server_kwargs['runtime_args']['protocol']
            if not isinstance(protocol, ProtocolType):
                protocol = ProtocolType.from_string(str(protocol))
            if protocol == ProtocolType.HTTP and not self.works_as_load_balancer:
                server_cls = LabelerHTTPGateway
            else:
                server_cls = _get_gateway_class(protocol, works_as_load_balancer=self.works_as_load_balancer)
            self.servers.append(server_cls(**server_kwargs))
        self.gateways = self.servers  # jina's name for them
