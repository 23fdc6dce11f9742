"""The Flow's gateway: one server per (protocol, port) pair, as jina's ``CompositeGateway``: the gRPC one
(:mod:`.grpc`) and the HTTP one (:mod:`.http`); no WebSocket (it has no access checks). Without ``$COVIDQA_TOKEN``
every server listens on 127.0.0.1 only (:func:`executors.access.bind_host`)."""
import logging

from jina.enums import ProtocolType
from jina.serve.runtimes.gateway.gateway import BaseGateway
from jina.serve.runtimes.servers.composite import CompositeBaseServer

from executors.access import LOOPBACK, bind_host, service_token
from executors.gateway import jina_patches
from executors.gateway.grpc import GuardedGRPCGateway
from executors.gateway.http import CovidQAHTTPGateway


class CovidQAGateway(CompositeBaseServer, BaseGateway):
    """One server per (protocol, port): :class:`GuardedGRPCGateway` for gRPC, :class:`CovidQAHTTPGateway` for HTTP."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.servers = []
        token = service_token()
        log = getattr(self, 'logger', None) or logging.getLogger(__name__)
        if not token:
            log.warning('COVIDQA_TOKEN is not set: every endpoint, writes included, is open to whoever reaches the '
                        'gateway, so it serves on 127.0.0.1 only')
        for server_kwargs in jina_patches.server_kwargs(self):
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
                server_cls = CovidQAHTTPGateway
            elif protocol == ProtocolType.GRPC and not self.works_as_load_balancer:
                server_cls = GuardedGRPCGateway
            elif protocol == ProtocolType.WEBSOCKET:
                raise ValueError('the websocket gateway has no token and size checks (executors/access.py): serve '
                                 'grpc and/or http')
            else:
                server_cls = jina_patches.gateway_class(protocol, self.works_as_load_balancer)
            self.servers.append(server_cls(**server_kwargs))
        self.gateways = self.servers  # jina's name for them
