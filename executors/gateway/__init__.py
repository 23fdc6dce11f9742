"""The Flow's gateway: jina's own gRPC and HTTP servers plus what this service needs of them.

- :mod:`.composite`: :class:`CovidQAGateway`, one server per (protocol, port) as jina's ``CompositeGateway``;
- :mod:`.http`: pages, client-error status codes, access and body checks on the HTTP side;
- :mod:`.grpc`: the same checks for gRPC calls;
- :mod:`.recording`: every ``/search`` reply written to the search log the finetuner reads;
- :mod:`.routing`: the schema check along each endpoint's own path, shared discovered endpoints;
- :mod:`.jina_patches`: every use of jina's private attributes (checked against the pinned jina by a test).

In flow.yml (jina loads this file; the classes live in the installed ``executors.gateway`` package)::

    gateway:
      uses: CovidQAGateway
      py_modules: [executors/gateway/__init__.py]
"""
from executors.gateway.composite import CovidQAGateway

__all__ = ['CovidQAGateway']
