"""The package's layers (docs/design.md): every import inside
efficientvit_dense, lazy ones in functions included, goes to the same layer
or one below it."""
import ast
import os.path as osp
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'efficientvit_dense'
LAYERS = ('errors', 'files', 'models', 'engine', 'analysis', 'apps', 'cli')  # lowest first


def _layer(module: str) -> str:
    """'efficientvit_dense.engine.runner' -> 'engine'."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(source: str, name: str, is_package: bool = False):
    """(line, imported module) for every import of the package in the
    ``source`` of module ``name``; ``from X import y`` counts as ``X.y``, so
    that ``from efficientvit_dense import apps`` is seen as the layer it is."""
    package = name if is_package else name.rsplit('.', 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                module = '.'.join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                module = node.module
            targets = [f'{module}.{a.name}' for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            if target.split('.')[0] == 'efficientvit_dense':
                yield node.lineno, target


def _climbs(source: str, name: str, is_package: bool = False) -> list[str]:
    """The imports in ``source`` that go to a layer above module ``name``'s,
    or to the package root, which imports every layer."""
    own = LAYERS.index(_layer(name))
    found = []
    for line, target in _imports(source, name, is_package):
        layer = _layer(target)
        if layer not in LAYERS or LAYERS.index(layer) > own:
            found.append(f'line {line}: {target}')
    return found


MODULES = sorted(p for p in PACKAGE.rglob('*.py') if p != PACKAGE / '__init__.py')


def test_every_module_belongs_to_a_layer():
    assert {_layer(_module_name(p)) for p in MODULES} == set(LAYERS)


@pytest.mark.parametrize('path', MODULES, ids=lambda p: osp.relpath(p, PACKAGE))
def test_no_import_climbs_to_a_layer_above(path):
    name = _module_name(path)
    upward = _climbs(path.read_text(), name, path.name == '__init__.py')
    assert not upward, f'{path.name} is in layer {_layer(name)!r} but imports from above: {upward}'


@pytest.mark.parametrize('source', [
    'from ..engine.config import load_config',        # relative, to a layer above
    'from efficientvit_dense.apps import demo',       # absolute
    'from efficientvit_dense import analysis',        # a layer named as a name
    'import efficientvit_dense',                      # the root, which imports every layer
    'def f():\n    from ..apps.demo import DEMOS',   # lazy, inside a function
])
def test_the_check_sees_every_form_of_upward_import(source):
    assert _climbs(source, 'efficientvit_dense.models.arch')
    assert not _climbs('from ..errors import ConfigError\nfrom .weights import short_list',
                       'efficientvit_dense.models.arch')
