"""Shared test fixtures: where the data lives, free ports, and Flows started as a user starts them."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
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


from covidqa.paths import data_dir  # noqa: E402  (after the offline default above)


def data_file(relative: str) -> Path:
    path = data_dir() / relative
    if not path.is_file():
        pytest.skip(f'data file {path} not found (set COVIDQA_DATA to the folder that holds {relative})')
    return path


@pytest.fixture(scope='session')
def faq_csv() -> Path:
    return data_file('covid_faq_deepset/faq_covidbert.csv')


@pytest.fixture(scope='session')
def community_csv() -> Path:
    return data_file('covidqa_xhlulu_community/community.csv')


@pytest.fixture(scope='session')
def paragraphs_train() -> Path:
    return data_file('covid_qa_paragraphs/qa_train.json')
