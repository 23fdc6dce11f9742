"""The private attributes of jina (and Starlette) that executors/gateway/jina_patches.py relies on still exist in the
pinned versions: each is a member of its class or module, or assigned as ``self.<name>`` in the class's source."""
import importlib
import inspect

import pytest

from executors.gateway import jina_patches
from executors.gateway.jina_patches import PRIVATE_ATTRIBUTES


def owner(module: str, qualname: str):
    found = importlib.import_module(module)
    for part in filter(None, qualname.split('.')):
        found = getattr(found, part)
    return found


@pytest.mark.parametrize('module, qualname, attribute', PRIVATE_ATTRIBUTES)
def test_the_private_attribute_is_still_there(module, qualname, attribute):
    where = owner(module, qualname)
    assigned = inspect.isclass(where) and f'self.{attribute} =' in inspect.getsource(where)
    assert hasattr(where, attribute) or assigned, f'{module}.{qualname} has no {attribute}: jina changed'


def test_only_jina_patches_touches_private_attributes():
    """The other gateway modules name none of the attributes listed there."""
    names = {attribute for _, _, attribute in PRIVATE_ATTRIBUTES}
    package = inspect.getfile(jina_patches).rsplit('/', 1)[0]
    import pathlib

    offenders = [f'{path.name}: {name}' for path in sorted(pathlib.Path(package).glob('*.py'))
                 if path.name != 'jina_patches.py' for name in names if f'.{name}' in path.read_text()]
    assert not offenders, offenders


def test_a_changed_jina_is_told_by_name():
    class Handler:
        streamer = object()  # no _streamer inside

    with pytest.raises(jina_patches.JinaChanged, match='searches would go unrecorded'):
        jina_patches.result_handler(Handler())
