"""The import graph has layers, with arrows only downwards: ``covidqa`` (the library) imports none of the others,
``toydata`` (data in) only the library, ``executors`` the library and data, ``client`` (which starts the Flow and
talks to it) any of them; never the other way round. Read from the source with :mod:`ast`, so lazy imports inside functions count too."""
import ast

import pytest

from tests.helpers import REPO

# package -> the first-party packages it may import
ALLOWED = {
    'covidqa': {'covidqa'},
    'toydata': {'covidqa', 'toydata'},
    'executors': {'covidqa', 'toydata', 'executors'},
    'client': {'covidqa', 'toydata', 'executors', 'client'},
}
FIRST_PARTY = set(ALLOWED) | {'tests', 'benchmarks'}


def imported_packages(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split('.')[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split('.')[0]


@pytest.mark.parametrize('package', sorted(ALLOWED))
def test_imports_point_downwards(package):
    files = sorted((REPO / package).rglob('*.py'))
    assert files, f'no Python files under {package}/'
    wrong = [f'{path.relative_to(REPO)}:{line} imports {name}'
             for path in files for line, name in imported_packages(path)
             if name in FIRST_PARTY and name not in ALLOWED[package]]
    assert not wrong, wrong


def test_no_module_edits_sys_path():
    offenders = [str(path.relative_to(REPO)) for package in [*ALLOWED, 'tests', 'benchmarks']
                 for path in (REPO / package).rglob('*.py') if 'sys.path.insert' in path.read_text()
                 and path.name != 'test_layers.py']
    assert not offenders, offenders
