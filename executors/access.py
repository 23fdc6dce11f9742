"""Who may write, and how much one request may carry: the gateway's checks, before any Executor or model runs.

- **A token for writes.** When ``$COVIDQA_TOKEN`` is set, every endpoint but the reads in :data:`OPEN_ENDPOINTS`
  (``/search``, ``/answer``, ``/count``, ``/status``, ``/qa/status``, ``/eval_feedback``) needs it: the writes (they
  change the index, the labels or a model), ``/qa/eval`` and ``/qa/test`` (they read whole files of the service),
  ``/export_feedback`` (what people asked), and any endpoint not listed here.
  HTTP header ``Authorization: Bearer <token>``, gRPC metadata ``('authorization', 'Bearer <token>')``. Without the
  variable every endpoint is open, and the gateway serves on 127.0.0.1 only (:func:`bind_host`).
- **Known endpoints only.** An endpoint outside :data:`ENDPOINTS` is refused with 404 (jina would pass the
  documents through every Executor unchanged and answer OK).
- **Bounded requests.** At most :data:`MAX_DOCS` documents a request (``$COVIDQA_MAX_DOCS``, default 256) and
  :data:`MAX_REQUEST_BYTES` bytes (``$COVIDQA_MAX_REQUEST_BYTES``, default 8 MiB): one large request cannot
  occupy the Flow for minutes. Clients send more in several requests (jina's client does: ``request_size``).

Each check returns ``None`` (allowed) or a :class:`Refusal` (status code and a message naming the problem).

Example::

    refusal = check_token('/delete', None, expected='s3cret')
    refusal.http_status, refusal.message   # 401, "/delete needs the service token: ..."
"""
from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from typing import Optional

OPEN_ENDPOINTS = frozenset({'/search', '/answer', '/count', '/status', '/qa/status', '/eval_feedback'})
WRITE_ENDPOINTS = frozenset({'/index', '/update', '/delete', '/qa/train', '/train', '/rollback', '/save_model',
                             '/feedback', '/answer_feedback'})
# reads that need the token too: a file on the service's disk, or what people asked (/export_feedback)
ENDPOINTS = OPEN_ENDPOINTS | WRITE_ENDPOINTS | {'/qa/eval', '/qa/test', '/export_feedback'}
TOKEN_ENV = 'COVIDQA_TOKEN'
LOOPBACK = '127.0.0.1'


def positive_env(name: str, default: int) -> int:
    """The positive integer in environment variable ``name`` (``default`` when unset or empty); anything else is a
    ``ValueError`` naming the variable."""
    raw = os.environ.get(name, '')
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ValueError(f'${name} must be a positive integer, got {raw!r}') from None
    if value < 1:
        raise ValueError(f'${name} must be a positive integer, got {raw!r}')
    return value


MAX_DOCS = positive_env('COVIDQA_MAX_DOCS', 256)
MAX_REQUEST_BYTES = positive_env('COVIDQA_MAX_REQUEST_BYTES', 8 * 1024 * 1024)


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: HTTP status (401 no/wrong token, 413 too large) and a message naming the fix."""

    http_status: int
    message: str


def service_token() -> Optional[str]:
    """The write token (``$COVIDQA_TOKEN``; empty counts as unset)."""
    return os.environ.get(TOKEN_ENV) or None


def bind_host(host: str, token: Optional[str]) -> str:
    """Where the gateway may listen: anywhere with a token, only on 127.0.0.1 without one."""
    return host if token else LOOPBACK


def normalise(endpoint: str) -> str:
    """``'/index/'``, ``'index'`` -> ``'/index'`` (what the checks compare; jina itself matches exactly)."""
    return '/' + (endpoint or '').strip().strip('/')


def check_endpoint(endpoint: str) -> Optional[Refusal]:
    """Refuse endpoints no Executor serves."""
    if endpoint in ENDPOINTS:
        return None
    return Refusal(404, f'unknown endpoint {endpoint!r}; the endpoints are {sorted(ENDPOINTS)}')


def check_token(endpoint: str, authorization: Optional[str], expected: Optional[str]) -> Optional[Refusal]:
    """``authorization``: the ``Authorization`` header / metadata value the client sent (``Bearer <token>``).
    Everything but :data:`OPEN_ENDPOINTS` needs the token (when there is one), unknown endpoints included."""
    endpoint = normalise(endpoint)
    if not expected or endpoint in OPEN_ENDPOINTS:
        return None
    presented = (authorization or '').strip()
    if presented.lower().startswith('bearer '):
        presented = presented[7:].strip()
    if not presented:
        return Refusal(401, f'{endpoint} needs the service token: send the header "Authorization: Bearer <token>" '
                            f'(gRPC metadata "authorization"); {", ".join(sorted(OPEN_ENDPOINTS))} need none')
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        return Refusal(401, f'{endpoint}: wrong service token')
    return None


def check_size(endpoint: str, docs: int, size_bytes: Optional[int] = None) -> Optional[Refusal]:
    """``docs`` documents in one request of ``size_bytes`` bytes (None: unknown)."""
    if size_bytes is not None and size_bytes > MAX_REQUEST_BYTES:
        return Refusal(413, f'{endpoint}: the request has {size_bytes} bytes; the limit is {MAX_REQUEST_BYTES} '
                            f'(COVIDQA_MAX_REQUEST_BYTES): send the documents in several requests')
    if docs > MAX_DOCS:
        return Refusal(413, f'{endpoint}: the request has {docs} documents; the limit is {MAX_DOCS} a request '
                            f'(COVIDQA_MAX_DOCS): send them in several requests (jina client: request_size)')
    return None


__all__ = ['OPEN_ENDPOINTS', 'WRITE_ENDPOINTS', 'ENDPOINTS', 'normalise', 'check_endpoint', 'MAX_DOCS', 'MAX_REQUEST_BYTES', 'Refusal', 'service_token', 'bind_host',
           'check_token', 'check_size']
