"""The Flow's gateway: jina's own servers for every protocol (gRPC, HTTP, WebSocket), plus the labeler page on the
HTTP side at ``GET /labeler`` (the page of :mod:`executors.finetuner`: it calls ``POST /search``, ``/feedback``,
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
    """jina's HTTP gateway with the labeler page."""

    @property
    def app(self):
        return add_labeler_routes(super().app)


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
