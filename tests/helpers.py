"""Helpers shared by the test modules (fixtures live in ``conftest.py``): where the repository and the data are.
Test modules import from here, never from each other.

Data files: every test that reads a file under the data root asks :func:`data_file` (directly or through the
``faq_csv``-style fixtures of ``conftest.py``), the one place that decides what a missing file means: a skip naming
the file for a developer without the data, a failure naming it when ``$COVIDQA_REQUIRE_DATA`` is set (``.ci/run``
sets it, so that CI cannot pass by skipping the tests that need the data)."""
import os
from pathlib import Path

import pytest

from covidqa.paths import REPO_ROOT as REPO
from covidqa.paths import data_dir
from covidqa.paths import data_file as _data_file

REQUIRE_DATA = 'COVIDQA_REQUIRE_DATA'


def data_required() -> bool:
    """Whether a missing data file fails the test (``$COVIDQA_REQUIRE_DATA`` set to anything but ``''``/``0``)."""
    return os.environ.get(REQUIRE_DATA, '').strip().lower() not in ('', '0', 'false', 'no')


def data_file(relative: str) -> Path:
    """A file under the data root (``$COVIDQA_DATA``). When it is missing the test is skipped, naming the file, or
    fails naming it when ``$COVIDQA_REQUIRE_DATA`` is set."""
    try:
        return _data_file(relative)
    except FileNotFoundError as error:
        missing = str(error)
    if data_required():
        pytest.fail(f'{missing} (${REQUIRE_DATA} is set: a missing data file fails the test)', pytrace=False)
    pytest.skip(missing)


VIRUSES = ['SARS-CoV-2', 'MERS-CoV', 'influenza A', 'Ebola virus', 'Zika virus', 'dengue virus', 'HIV-1',
           'rotavirus', 'norovirus', 'measles virus', 'hantavirus', 'chikungunya virus']
HOSTS = ['bats', 'camels', 'wild birds', 'fruit bats', 'mosquitoes', 'monkeys', 'chimpanzees', 'children',
         'oysters', 'ferrets', 'rodents', 'Aedes mosquitoes']
DAYS = ['5 days', '2 to 14 days', '1 to 4 days', '8 to 10 days', '3 to 12 days', '4 to 7 days', '2 to 4 weeks',
        '1 to 3 days', '12 to 48 hours', '10 to 12 days', '1 to 5 weeks', '3 to 7 days']


def make_rows():
    """24 synthetic QA rows ``(context, question, answer_text, answer_start)``: two questions (reservoir,
    incubation period) about each of 12 viruses, each answer a span of its context."""
    rows = []
    for i, (virus, host, days) in enumerate(zip(VIRUSES, HOSTS, DAYS)):
        context = (f'{virus} is a pathogen studied in many laboratories. The natural reservoir of {virus} is {host}. '
                   f'The incubation period of {virus} is {days}. Vaccines against it are under development.')
        rows.append((context, f'What is the natural reservoir of {virus}?', host, context.index(f'is {host}') + 3))
        rows.append((context, f'What is the incubation period of {virus}?', days, context.index(f'is {days}') + 3))
    return rows  # 24 rows


def read_one(reader, question, contexts, context_ids=None, **settings):
    """The answers of one question (``reader.read`` of a one-question batch)."""
    return reader.read([question], [contexts], [context_ids] if context_ids is not None else None,
                       **settings).answers[0]


__all__ = ['REPO', 'REQUIRE_DATA', 'data_dir', 'data_file', 'data_required', 'make_rows', 'read_one']


def count_with_progress(steps: int, callback=None) -> dict:
    """A function for :func:`covidqa.runtime.child.run_in_child` tests: reports ``steps`` progress calls, then answers
    with the process id it ran in."""
    import os

    for step in range(steps):
        if callback is not None:
            callback({'step': step + 1, 'steps': steps})
    return {'pid': os.getpid(), 'steps': steps}


def sleep_for(seconds: float) -> None:
    """A child-process function that takes ``seconds`` (for cancelling tests)."""
    import time

    time.sleep(seconds)


def shared_fraction(a, b) -> float:
    """How much two answers (``start``/``end`` character offsets into one context) overlap, as
    ``covidqa.reader.decoding.drop_overlapping`` measures it: the shared characters over either answer's length, the
    larger of the two (0 when they do not overlap)."""
    shared = min(a.end, b.end) - max(a.start, b.start)
    return max(shared / max(a.end - a.start, 1), shared / max(b.end - b.start, 1)) if shared > 0 else 0.0
