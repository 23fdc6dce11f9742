"""Shared test fixtures (helpers that are not fixtures live in ``tests/helpers.py``).

Every test is marked by where it lives: ``tests/unit`` -> ``unit`` (in process, the real packaged model, no
network), ``tests/integration`` -> ``integration`` (real Flows on 127.0.0.1 ports, real gRPC/HTTP clients, a real
browser). ``slow`` marks unit tests that train or read whole data sets; ``make test-fast`` runs
``-m "unit and not slow"``. Data files are asked for through ``tests.helpers.data_file`` (here: the fixtures
below), which skips a test whose file is missing, or fails it when ``$COVIDQA_REQUIRE_DATA`` is set (``.ci/run``).
"""
import os
from pathlib import Path

import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')


@pytest.fixture(scope='session', autouse=True)
def shared_onnx_cache(tmp_path_factory):
    """One ONNX export cache for the whole run (Flows started by tests inherit it), so each test Flow with a fresh
    ``$COVIDQA_HOME`` does not export the packaged model again; the cache's own re-export logic is unchanged."""
    if 'COVIDQA_ONNX_CACHE' in os.environ:
        yield os.environ['COVIDQA_ONNX_CACHE']
        return
    path = str(tmp_path_factory.mktemp('onnx-cache'))
    os.environ['COVIDQA_ONNX_CACHE'] = path
    try:
        yield path
    finally:
        os.environ.pop('COVIDQA_ONNX_CACHE', None)


from covidqa.paths import FAQ_FILE  # noqa: E402
from tests.helpers import REPO, data_dir, data_file, data_required  # noqa: E402,F401  (after the offline default)


def pytest_report_header(config):
    """Where the data is read from, and what a missing data file means (tests/helpers.py ``data_file``)."""
    meaning = 'fails its test ($COVIDQA_REQUIRE_DATA)' if data_required() else 'skips its test'
    return f'data: {data_dir()} (a missing data file {meaning})'


@pytest.fixture(scope='session')
def faq_csv() -> Path:
    return data_file(FAQ_FILE)


@pytest.fixture(scope='session')
def community_csv() -> Path:
    return data_file('covidqa_xhlulu_community/community.csv')


@pytest.fixture(scope='session')
def paragraphs_train() -> Path:
    return data_file('covid_qa_paragraphs/qa_train.json')


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        if 'integration' in parts:
            item.add_marker(pytest.mark.integration)
        elif 'unit' in parts:
            item.add_marker(pytest.mark.unit)
