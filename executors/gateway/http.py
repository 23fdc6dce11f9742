"""The HTTP side of the gateway: jina's ``HTTPGateway`` with the ask/labeler pages, status codes that tell client errors
from server faults, and the access and body checks that run before anything else.

- **Status codes.** jina's HTTP gateway answers every failed request with 500. Here a request refused because of
  what the client sent (an Executor raised :class:`executors._common.BadRequest`, or a parameter failed its
  pydantic model) is **400** with the same ``detail``; a body that parses but does not fit the request model stays
  FastAPI's **422** naming the field; anything else stays **500** and is logged with the request id.
- **Before anything runs** (a middleware): writes without the service token are **401**, bodies over the byte or
  document limits **413** (:mod:`executors.access`), bodies that are not JSON, nest deeper than
  :data:`MAX_JSON_DEPTH` or carry NaN/Infinity **400**, each naming the problem.
- ``GET /``: the ask page (a question box; the answers highlighted in their passages, with their source and how
  likely each is right; "no answer"; 👍 / 👎 and "the selected text is the right answer", sent to
  ``/answer_feedback``). ``GET /labeler``: the labeler page of :mod:`executors.finetuner`.
"""
import json
from pathlib import Path
from typing import Optional

from jina.serve.runtimes.gateway.http import HTTPGateway

from executors.access import MAX_REQUEST_BYTES, Refusal, check_size, check_token, normalise, service_token
from executors.gateway import jina_patches
from executors.gateway.recording import route_and_record

LABELER_DIR = Path(__file__).resolve().parents[1] / 'labeler'
LABELER_PATH = '/labeler'
ASK_DIR = Path(__file__).resolve().parents[1] / 'ask'
ASK_PATH = '/'




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
                jina_patches.replay_body(request, body)  # what the endpoint reads
                refusal = _body_refusal(endpoint, body)
        if refusal is not None:
            await _drain(request, declared)
            return JSONResponse({'detail': refusal.message}, status_code=refusal.http_status)
        return await call_next(request)

    return app


def _page(directory: Path):
    from fastapi.responses import HTMLResponse

    # read per request: the page is small, and an edited page shows without a restart
    html = (directory / 'index.html').read_text(encoding='utf-8')
    return HTMLResponse(html, headers={'Cache-Control': 'no-store'})


def add_labeler_routes(app):
    """Add ``GET /`` (the ask page; in place of any route jina put there), ``GET /labeler`` (the labeler page)
    and ``GET /labeler/`` (redirect) to a FastAPI app; returns the app."""
    from fastapi.responses import RedirectResponse

    app.router.routes[:] = [r for r in app.router.routes if getattr(r, 'path', None) != ASK_PATH]

    @app.get(ASK_PATH, include_in_schema=False)
    async def _ask_page():
        return _page(ASK_DIR)

    @app.get(LABELER_PATH, include_in_schema=False)
    async def _labeler_page():
        return _page(LABELER_DIR)

    @app.get(LABELER_PATH + '/', include_in_schema=False)
    async def _labeler_slash():
        return RedirectResponse(LABELER_PATH)

    return app


class CovidQAHTTPGateway(HTTPGateway):
    """jina's HTTP gateway with the labeler page and client-error status codes."""

    async def setup_server(self):
        route_and_record(self)
        await super().setup_server()

    @property
    def app(self):
        app = add_status_codes(add_labeler_routes(super().app), getattr(self, 'logger', None))
        return add_access_checks(app, service_token())
