"""Shared test fixtures: where the data lives, free ports, and Flows started as a user starts them."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault('HF_HUB_OFFLINE', '1')


def data_dir() -> Path:
    """``$COVIDQA_DATA``, else ``../shared/data`` next to the repository (this environment's copy)."""
    return Path(os.environ.get('COVIDQA_DATA') or REPO.parent / 'shared' / 'data')


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
