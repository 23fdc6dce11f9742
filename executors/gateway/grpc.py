"""The gRPC side of the gateway: jina's ``GRPCGateway`` with the token and size checks of :mod:`executors.access`
applied to every ``DataRequest`` before jina handles it (a refused request ends the call with UNAUTHENTICATED,
RESOURCE_EXHAUSTED or INVALID_ARGUMENT and the message). The reply header carries the exception's class name
(``header.status.exception.name``: ``BadRequest`` for a client error), so gRPC clients tell errors apart as HTTP
clients do by status code.
"""
from jina.serve.runtimes.gateway.grpc import GRPCGateway

from executors.access import MAX_REQUEST_BYTES, Refusal, check_endpoint, check_size, check_token, service_token
from executors.gateway.recording import route_and_record


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


class GuardedGRPCGateway(GRPCGateway):
    """jina's gRPC gateway with the token and size checks of :mod:`executors.access`."""

    async def setup_server(self):
        guard_grpc_handler(route_and_record(self), service_token())
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
