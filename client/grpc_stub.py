"""A plain synchronous gRPC client of the Flow's gateway (:class:`GrpcStub`), for load tests and for callers
that want one long-lived channel.

jina's sync ``Client.post`` starts an event loop and opens a channel for every call: a few ms per call, and much
more when several threads each run their own Client in one process (the soak test measured seconds per request).
:class:`GrpcStub` sends jina's own ``DataRequest`` protobuf over the gateway's unary ``process_single_data`` RPC
on one channel; the reply is the gateway's ``DataRequest`` (``.docs`` typed as :class:`covidqa.docs.QADoc`,
``.parameters['__results__']``).

Example::

    stub = GrpcStub(54321)
    reply = stub.post('/search', DocList[QADoc]([QADoc(text='How does the virus spread?')]), {'limit': 3})[0]
    print([m.text for m in reply.docs[0].matches])
"""
from __future__ import annotations

from typing import Optional


class ExecutorError(Exception):
    """An Executor raised (the reply's header says ERROR): ``name`` is its exception class, as jina reports it."""

    def __init__(self, name: str, description: str):
        super().__init__(f'{name}: {description}')
        self.name = name


class GrpcStub:
    """One channel to the gateway at ``host:port``; :meth:`post` sends one unary ``process_single_data`` call per
    request of at most ``request_size`` documents and returns the reply ``DataRequest``s, in order. It raises
    :class:`ExecutorError` when an Executor failed and ``grpc.RpcError`` for a refusal or a transport error
    (``error.code()``: INVALID_ARGUMENT, UNAUTHENTICATED, RESOURCE_EXHAUSTED, ...). Safe to share between threads
    (gRPC channels are)."""

    def __init__(self, port: int, host: str = '127.0.0.1'):
        import grpc
        from jina.proto.serializer import DataRequestProto

        self.channel = grpc.insecure_channel(f'{host}:{port}', options=[('grpc.max_send_message_length', -1),
                                                                        ('grpc.max_receive_message_length', -1)])
        self._call = self.channel.unary_unary('/jina.JinaSingleDataRequestRPC/process_single_data',
                                              request_serializer=DataRequestProto.SerializeToString,
                                              response_deserializer=DataRequestProto.FromString)

    def post(self, endpoint: str, docs, parameters: Optional[dict] = None, metadata=(), timeout: float = 60,
             request_size: int = 100) -> list:
        from jina.types.request.data import DataRequest

        from covidqa.docs import DocList, QADoc

        replies = []
        for start in range(0, max(len(docs), 1), request_size):
            request = DataRequest()
            request.header.exec_endpoint = endpoint
            request.data.docs = DocList[QADoc](docs[start:start + request_size])
            request.parameters = parameters or {}
            reply = self._call(request, timeout=timeout, metadata=tuple(metadata))
            status = reply.header.status
            if status.code == status.ERROR:
                raise ExecutorError(status.exception.name or 'unnamed', status.description)
            reply.document_array_cls = DocList[QADoc]
            replies.append(reply)
        return replies

    def close(self) -> None:
        self.channel.close()


__all__ = ['GrpcStub', 'ExecutorError']
