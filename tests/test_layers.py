"""The package's layers (docs/design.md): every import inside
efficientvit_dense, lazy ones in functions included, goes to the same layer
or one below it."""
import ast
import os.path as osp
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'efficientvit_dense'
LAYERS = ('errors', 'models', 'engine', 'analysis', 'apps', 'cli')  # lowest first


def _layer(module: str) -> str:
    """'efficientvit_dense.engine.runner' -> 'engine'."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: Path):
    """(line, imported module) for every import of the package in ``path``."""
    name = _module_name(path)
    package = name if path.name == '__init__.py' else name.rsplit('.', 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
                targets = [target] if node.module else [f'{target}.{a.name}' for a in node.names]
            else:
                targets = [node.module] if node.module else []
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            if target.split('.')[0] == 'efficientvit_dense':
                yield node.lineno, target


MODULES = sorted(p for p in PACKAGE.rglob('*.py') if p != PACKAGE / '__init__.py')


def test_every_module_belongs_to_a_layer():
    assert {_layer(_module_name(p)) for p in MODULES} == set(LAYERS)


@pytest.mark.parametrize('path', MODULES, ids=lambda p: osp.relpath(p, PACKAGE))
def test_no_import_climbs_to_a_layer_above(path):
    own = LAYERS.index(_layer(_module_name(path)))
    upward = [f'line {line}: {target}' for line, target in _imports(path)
              if _layer(target) in LAYERS and LAYERS.index(_layer(target)) > own]
    assert not upward, f'{path.name} is in layer {LAYERS[own]!r} but imports from above: {upward}'
