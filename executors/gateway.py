"""Gateway of the Flow: jina's own gRPC/HTTP/WebSocket servers, plus the labeler page on the HTTP side.

draft
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jina.enums import ProtocolType  # noqa: E402
from jina.parsers.helper import _get_gateway_class  # noqa: E402
from jina.serve.runtimes.gateway.gateway import BaseGateway  # noqa: E402
from jina.serve.runtimes.gateway.http import HTTPGateway  # noqa: E402
from jina.serve.runtimes.servers.composite import CompositeBaseServer  # noqa: E402

LABELER_DIR = Path(__file__).resolve().parent / 'labeler'


def add_labeler_routes(app):
    from fastapi.responses import FileResponse, RedirectResponse

    @app.get('/labeler', include_in_schema=False)
    async def _labeler_page():
        return FileResponse(LABELER_DIR / 'index.html', media_type='text/html')

    return app


class LabelerHTTPGateway(HTTPGateway):
    @property
    def app(self):
        return add_labeler_routes(super().app)


class LabelerGateway(CompositeBaseServer, BaseGateway):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.servers = []
        for server_kwargs in self._server_kwargs:
            protocol = ProtocolType.from_string(str(server_kwargs['runtime_args']['protocol']))
            if protocol == ProtocolType.HTTP and not self.works_as_load_balancer:
                server_cls = LabelerHTTPGateway
            else:
                server_cls = _get_gateway_class(protocol, works_as_load_balancer=self.works_as_load_balancer)
            self.servers.append(server_cls(**server_kwargs))
        self.gateways = self.servers
