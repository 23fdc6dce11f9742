"""The registry of child-process jobs (covidqa/jobs.py): every entry names a function that exists, unknown names are
refused by name, and the product passes names, never its own 'module:function' strings."""
import importlib
import inspect
import re

import pytest

from covidqa.jobs import JOBS, target_of
from covidqa.runtime.child import run_in_child
from tests.helpers import REPO


@pytest.mark.parametrize('job', sorted(JOBS))
def test_every_job_names_a_function(job):
    module, _, name = JOBS[job].partition(':')
    assert callable(getattr(importlib.import_module(module), name)), JOBS[job]
    assert target_of(job) == JOBS[job]


def test_an_unknown_job_is_refused_naming_the_jobs():
    with pytest.raises(KeyError, match=r"no child-process job 'train-readr'; the jobs are \['export-onnx'"):
        run_in_child('train-readr', {})
    assert target_of('tests.helpers:sleep_for') == 'tests.helpers:sleep_for'  # a test's own function


def test_the_product_names_jobs_through_the_registry():
    target = re.compile(r"""['"][a-z_]+(\.[a-z_]+)+:[a-z_]+['"]""")
    offenders = [f'{path.relative_to(REPO)}:{number}' for package in ('covidqa', 'executors', 'client')
                 for path in sorted((REPO / package).rglob('*.py')) if path.name != 'jobs.py'
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if target.search(line) and 'package.module:function' not in line]
    assert not offenders, offenders
    assert 'job' in inspect.signature(run_in_child).parameters
