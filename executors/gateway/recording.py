"""The search log, written by the gateway from every successful ``/search`` reply just before it leaves (feedback
names a search and what it showed: :mod:`covidqa.feedback.store`)."""
import functools

from covidqa.feedback.search_log import ROTATE_BYTES, SearchLog, search_records_of
from covidqa.feedback.store import SEARCHES_FILE
from covidqa.paths import feedback_dir
from executors.access import positive_env
from executors.gateway import jina_patches
from executors.gateway.routing import route_by_endpoint

SEARCH_ENDPOINT = '/search'


@functools.lru_cache(maxsize=None)
def gateway_search_log() -> SearchLog:
    """The search log this gateway process writes (``$COVIDQA_HOME/feedback/searches.jsonl``; one for its gRPC and
    HTTP servers), opened as its one writer on first use; rotated past ``$COVIDQA_SEARCH_LOG_BYTES`` (default
    :data:`covidqa.feedback.search_log.ROTATE_BYTES`, 64 MiB)."""
    return SearchLog(feedback_dir() / SEARCHES_FILE, writer=True,
                     max_bytes=positive_env('COVIDQA_SEARCH_LOG_BYTES', ROTATE_BYTES))


def _reply_documents(result):
    """The documents of a reply as docarray's ``DocListProto`` (jina keeps them parsed or as bytes)."""
    content = result.proto_with_data.data
    if content.WhichOneof('documents') == 'docs_bytes':
        from docarray.proto import DocListProto

        return DocListProto.FromString(content.docs_bytes)
    return content.docs


def route_and_record(server) -> object:
    """What both servers of the gateway do to jina's request handler before they serve: route each endpoint along
    its own path (:func:`executors.gateway.routing.route_by_endpoint`) and log every ``/search`` reply
    (:func:`log_searches`). Returns the handler."""
    handler = jina_patches.request_handler(server)
    route_by_endpoint(handler)
    log_searches(handler, gateway_search_log(), getattr(server, 'logger', None))
    return handler


def log_searches(request_handler, search_log: SearchLog, logger=None) -> None:
    """Write what every successful ``/search`` reply shows into ``search_log``, just before the reply leaves.

    Feedback is checked against what was shown (:mod:`covidqa.feedback.store`), so every search must be recorded. The
    finetuner used to record it as the last Executor of ``/search``: a gRPC hop with ~4 ms of decoding and
    re-encoding the matches per request. Here jina's result handler (the one step every reply of this server takes,
    gRPC and HTTP alike; wrapped once even where both servers share it) reads the ids and texts straight from the
    reply's protobuf (:func:`covidqa.feedback.search_log.search_records_of`, ~20 us) and appends them with one write. The log line is written
    before the client gets its reply, so feedback sent right after a search finds it. A failed write is logged and
    the search still answered (its feedback will be refused as 'never searched')."""
    from jina.proto import jina_pb2

    handle = jina_patches.result_handler(request_handler)
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
    jina_patches.replace_result_handler(request_handler, handle_and_log)
