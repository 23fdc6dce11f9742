"""Helpers shared by the test modules (fixtures live in ``conftest.py``): where the repository and the data are.
Test modules import from here, never from each other."""
from pathlib import Path

import pytest

from covidqa.paths import REPO_ROOT as REPO
from covidqa.paths import data_dir


def data_file(relative: str) -> Path:
    """A file under the data root (``$COVIDQA_DATA``); the test is skipped, naming the file, when it is missing."""
    path = data_dir() / relative
    if not path.is_file():
        pytest.skip(f'data file {path} not found (set COVIDQA_DATA to the folder that holds {relative})')
    return path


__all__ = ['REPO', 'data_dir', 'data_file']
