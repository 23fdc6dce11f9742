"""The gateway's access rules (executors/access.py): which endpoints need the token, what a request may carry."""
import pytest

from executors.access import (
    MAX_DOCS,
    MAX_REQUEST_BYTES,
    WRITE_ENDPOINTS,
    bind_host,
    check_endpoint,
    check_size,
    check_token,
)


@pytest.mark.parametrize('endpoint', sorted(WRITE_ENDPOINTS))
def test_writes_need_the_token_when_there_is_one(endpoint):
    assert check_token(endpoint, None, 's3cret').http_status == 401
    assert 'needs the service token' in check_token(endpoint, '', 's3cret').message
    assert 'wrong service token' in check_token(endpoint, 'Bearer nope', 's3cret').message
    assert check_token(endpoint, 'Bearer s3cret', 's3cret') is None
    assert check_token(endpoint, 's3cret', 's3cret') is None  # the bare token is accepted too
    assert check_token(endpoint, None, None) is None  # no token configured: open


@pytest.mark.parametrize('endpoint', ['/search', '/answer', '/count', '/status'])
def test_reads_stay_open(endpoint):
    assert check_token(endpoint, None, 's3cret') is None


def test_without_a_token_the_gateway_serves_loopback_only():
    assert bind_host('0.0.0.0', None) == '127.0.0.1'
    assert bind_host('0.0.0.0', 's3cret') == '0.0.0.0'


def test_size_limits_name_the_limit():
    assert check_size('/search', MAX_DOCS) is None
    refusal = check_size('/search', MAX_DOCS + 1)
    assert refusal.http_status == 413 and f'the limit is {MAX_DOCS}' in refusal.message
    refusal = check_size('/index', 1, MAX_REQUEST_BYTES + 1)
    assert refusal.http_status == 413 and 'bytes' in refusal.message


def test_everything_but_the_reads_needs_the_token():
    for endpoint in ['/qa/eval', '/qa/test', '/no-such-endpoint', '/delete/', 'delete', ' /index ']:
        assert check_token(endpoint, None, 's3cret').http_status == 401, endpoint
    assert check_token('/search/', None, 's3cret') is None


def test_unknown_endpoints_are_refused_by_name():
    assert check_endpoint('/search') is None
    refusal = check_endpoint('/searc')
    assert refusal.http_status == 404 and "unknown endpoint '/searc'" in refusal.message
