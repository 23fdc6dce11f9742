"""The import graph has layers, with arrows only downwards, read from the source with :mod:`ast` (lazy imports
inside functions count too).

Between packages: ``covidqa`` (the library) imports none of the others, ``toydata`` (data in) only the library,
``executors`` the library and data, ``client`` (which starts the Flow and talks to it) any of them.

Inside ``covidqa``: each sub-package sits on a floor (:data:`FLOORS`, top first) and imports only from its own
package or from lower floors, so two packages on one floor never import each other; and no set of modules imports
itself round in a circle."""
import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

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

# covidqa's floors, top first: a module imports from its own sub-package or from a floor below its own
FLOORS: List[Set[str]] = [
    {'qa', 'feedback'},
    {'index', 'reader'},
    {'data', 'embedding'},
    {'text'},
    {'models', 'training'},
    {'runtime'},
    {'paths', 'docs', 'jobs', 'options', '__init__'},
]
FLOOR_OF = {name: level for level, names in enumerate(FLOORS) for name in names}


def imports_of(path: Path) -> Iterator[Tuple[int, str]]:
    """``(line, dotted module)`` of every absolute import in ``path`` (``from a.b import c``: ``a.b.c`` when
    ``a.b.c`` is a module of this repository, else ``a.b``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                candidate = f'{node.module}.{alias.name}'
                yield node.lineno, candidate if module_path(candidate) else node.module


def module_path(dotted: str):
    base = REPO.joinpath(*dotted.split('.'))
    for path in (base.with_suffix('.py'), base / '__init__.py'):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def subpackage(dotted: str) -> str:
    """``covidqa.reader.windows`` -> ``reader``; ``covidqa.paths`` -> ``paths``; ``covidqa`` -> ``__init__``."""
    parts = dotted.split('.')
    return parts[1] if len(parts) > 1 else '__init__'


@pytest.mark.parametrize('package', sorted(ALLOWED))
def test_imports_point_downwards(package):
    files = sorted((REPO / package).rglob('*.py'))
    assert files, f'no Python files under {package}/'
    wrong = [f'{path.relative_to(REPO)}:{line} imports {name}'
             for path in files for line, name in imports_of(path)
             if name.split('.')[0] in FIRST_PARTY and name.split('.')[0] not in ALLOWED[package]]
    assert not wrong, wrong


def covidqa_graph() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for path in sorted((REPO / 'covidqa').rglob('*.py')):
        graph[module_name(path)] = {name for _, name in imports_of(path)
                                    if name.split('.')[0] == 'covidqa' and module_path(name)}
    return graph


def test_every_covidqa_module_sits_on_a_floor():
    unplaced = sorted({subpackage(m) for m in covidqa_graph()} - set(FLOOR_OF))
    assert not unplaced, f'covidqa sub-packages or modules with no floor in FLOORS: {unplaced}'


def wrong_floor_arrows(edges: List[Tuple[str, str, str]]) -> List[str]:
    """The ``(where, importer, imported)`` module edges that go to another sub-package on the same or a higher
    floor."""
    wrong = []
    for where, importer, imported in edges:
        here, there = subpackage(importer), subpackage(imported)
        if imported != 'covidqa' and there != here and FLOOR_OF[there] <= FLOOR_OF[here]:
            wrong.append(f'{where} ({here}, floor {FLOOR_OF[here]}) imports {imported} ({there}, floor '
                         f'{FLOOR_OF[there]})')
    return wrong


def test_covidqa_imports_only_its_own_package_or_lower_floors():
    assert wrong_floor_arrows([('x.py:1', 'covidqa.runtime.child', 'covidqa.qa.api'),     # up: caught
                               ('x.py:2', 'covidqa.reader.scoring', 'covidqa.index.store'),  # sideways: caught
                               ('x.py:3', 'covidqa.qa.api', 'covidqa.reader.reader'),        # down: fine
                               ('x.py:4', 'covidqa.qa.api', 'covidqa.qa.args')]) == [        # own package: fine
        'x.py:1 (runtime, floor 5) imports covidqa.qa.api (qa, floor 0)',
        'x.py:2 (reader, floor 1) imports covidqa.index.store (index, floor 1)']
    edges = [(f'{path.relative_to(REPO)}:{line}', module_name(path), name)
             for path in sorted((REPO / 'covidqa').rglob('*.py')) for line, name in imports_of(path)
             if name.split('.')[0] == 'covidqa' and module_path(name)]
    assert not wrong_floor_arrows(edges), wrong_floor_arrows(edges)


def circles_of(graph: Dict[str, Set[str]]) -> List[str]:
    """The import circles of ``graph`` (module -> the modules it imports), each as ``a -> b -> a``."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    found: List[str] = []

    def visit(node: str, trail: List[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(' -> '.join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_no_import_circles_in_covidqa():
    assert circles_of({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == ['a -> b -> c -> a']  # the check works
    assert not circles_of(covidqa_graph()), circles_of(covidqa_graph())


def test_no_module_edits_sys_path():
    offenders = [str(path.relative_to(REPO)) for package in [*ALLOWED, 'tests', 'benchmarks']
                 for path in (REPO / package).rglob('*.py') if 'sys.path.insert' in path.read_text()
                 and path.name != 'test_layers.py']
    assert not offenders, offenders
