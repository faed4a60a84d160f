"""Reading a config as the tools do, and the config mistakes a user should
hear about in one line: a misspelt top-level key (mmengine ignores it
silently) or keyword (the class's TypeError, buried in a traceback).
"""
from __future__ import annotations

import ast
import contextlib
import difflib
import importlib
import inspect
import os
import os.path as osp
import re

from mmengine.config import Config

from ..errors import ConfigError, DataNotFoundError, InputNotFoundError

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
EVALUATORS = ('val_evaluator', 'test_evaluator')

# What mmengine's Runner.from_cfg and this project's runner read at the top level of a config.
RUNNER_KEYS = (
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg', 'val_cfg',
    'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from', 'resume', 'launcher', 'env_cfg',
    'log_processor', 'log_level', 'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'model_wrapper_cfg', 'find_unused_parameters', 'compile', 'strategy', 'data_checks')

# mmengine prefixes every error raised while building with the class it was building.
_BUILD_PREFIX = re.compile(r'class `\w+` in [\w/.]+\.py: ')


# --------------------------------------------------------------------------
# Reading a config

AMP_DTYPES = ('float16', 'bfloat16')  # what --amp trains in (runner.mixed_precision sets the config)


def resolve_config_path(path: str) -> str:
    """A config file, or a toolbox's own config named as in ``_base_``
    (``mmdet::retinanet/retinanet_r50_fpn_1x_coco.py``), e.g. a peer to compare with."""
    if '::' in path:
        try:  # mmengine's own lookup for `_base_`
            path, _ = Config._get_cfg_path(path, '')
        except (FileNotFoundError, ModuleNotFoundError, ValueError) as err:
            raise InputNotFoundError(f'Config not found: {path} ({err}).') from err
    if not osp.isfile(path):
        raise InputNotFoundError(f'Config file not found: {path}')
    return path


def _reach(node, parts: list[str]) -> tuple[int, object]:
    """How far a --cfg-options key (``parts``) reaches into ``node``
    through what mmengine merges into (dicts and lists): the number of its
    parts found, and the value at the last of them."""
    for depth, part in enumerate(parts):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, (dict, Config)) and part in node:
            node = node[part]
        else:
            return depth, node
    return len(parts), node


def check_options_reach_into_dicts(cfg: Config, path: str, options: dict) -> None:
    """Refuse an option that sets a key inside a value that is not a dict
    or list (``model.backbone.init_cfg.checkpoint`` where the config's
    ``init_cfg`` is None; a tuple, set whole), in one line: mmengine's merge
    fails there with a traceback about inheritance."""
    for key in options:
        parts = key.split('.')
        depth, node = _reach(cfg, parts)
        if 0 < depth < len(parts) and not isinstance(node, (dict, list)):
            parent = '.'.join(parts[:depth])
            raise ConfigError(f'{path}: --cfg-options {key}: {parent} is {node!r} in this config, not a dict or '
                              f'list, so there is nothing to set inside it. Set {parent} whole (--cfg-options '
                              f'{parent}=..., or in a config of your own that inherits this one).')


def load_config(path: str, cfg_options: dict | None = None, work_dir: str | None = None,
                data_root: str | None = None) -> Config:
    """Read a config, apply ``--cfg-options``, pick the work dir (default
    ``work_dirs/<config name>``) and move the data root if asked."""
    path = resolve_config_path(path)
    try:
        cfg = Config.fromfile(path)
    except FileNotFoundError as err:  # a _base_ or a file it reads that is not there
        hint = ''
        if '::' not in str(err) and any('::' not in base for base in Config._get_base_files(path)):
            hint = (' A relative _base_ is found from the folder of the config that names it: a config copied to '
                    'another folder needs its _base_ path from there.')
        raise InputNotFoundError(f'{path}: {err}.{hint}') from err
    if cfg_options:
        check_variable_options(cfg, path, cfg_options)
        check_options_reach_into_dicts(cfg, path, cfg_options)
        new_keys = new_option_keys(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
        check_option_keys(cfg, new_keys, path)
    check_top_level_keys(cfg, path)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    if data_root is not None:
        set_data_root(cfg, data_root)
    fill_classes_from_folders(cfg)
    return cfg


def config_from_text(text: str) -> Config:
    """A config saved as text (``meta['cfg']`` of an mmengine checkpoint) read
    as data, never run: ``Config.fromstring`` executes the text, and a
    checkpoint's text is as trusted as its pickles, which are loaded with
    ``weights_only=True``. ``ValueError`` if it holds anything but
    ``name = value`` lines of literals, lists, tuples and dicts (as
    mmengine's ``pretty_text`` writes them)."""
    values = {}
    for node in ast.parse(text).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ValueError(f'line {node.lineno} is not a `name = value` assignment')
        values[node.targets[0].id] = _plain_value(node.value)
    try:
        return Config(values)
    except KeyError as err:  # a name mmengine's Config reserves (filename, text, ...)
        raise ValueError(f'it sets {err}, which a config may not') from None


# pretty_text writes float('inf') and float('nan') by their repr
_FLOAT_NAMES = {'inf': float('inf'), 'nan': float('nan')}


def _plain_value(node: ast.expr):
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict':
        if not node.args and all(keyword.arg for keyword in node.keywords):
            return {keyword.arg: _plain_value(keyword.value) for keyword in node.keywords}
        if len(node.args) == 1 and isinstance(node.args[0], ast.Dict) and not node.keywords:
            return _plain_value(node.args[0])  # dict({'.cls_token': ...}): keys that are not names
    if isinstance(node, ast.Dict) and None not in node.keys:
        keys = [_plain_value(key) for key in node.keys]
        if not all(isinstance(key, (str, int, float, bool, type(None))) for key in keys):
            raise ValueError(f'line {node.lineno} holds a dict key that is not a plain value')
        return dict(zip(keys, (_plain_value(value) for value in node.values)))
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_plain_value(element) for element in node.elts]
        return values if isinstance(node, ast.List) else tuple(values)
    if isinstance(node, ast.Name) and node.id in _FLOAT_NAMES:
        return _FLOAT_NAMES[node.id]
    try:
        return ast.literal_eval(node)  # numbers (negative ones too), strings, True/False/None
    except ValueError:
        raise ValueError(f'line {node.lineno} holds an expression, not a value') from None


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataset, and every evaluator file under the old root, at
    ``data_root``."""
    data_root = data_root.rstrip('/') + '/'
    old_roots = {ds.get('data_root') for _, ds in iter_datasets(cfg)} | {cfg.get('data_root')}
    # The longest first: of data/ and data/coco/, a file under data/coco/ moves from there.
    old_roots = sorted({r.rstrip('/') + '/' for r in old_roots if r}, key=len, reverse=True)
    cfg.data_root = data_root
    for _, dataset in iter_datasets(cfg):
        dataset['data_root'] = data_root
    for evaluator in evaluators(cfg):
        ann_file = evaluator.get('ann_file')
        old = next((old for old in old_roots if isinstance(ann_file, str) and ann_file.startswith(old)), None)
        if old is not None:
            evaluator['ann_file'] = data_root + ann_file[len(old):]


def fill_classes_from_folders(cfg: Config) -> None:
    """A classifier on class-per-folder data (mmpretrain's CustomDataset
    without an annotation file): ``num_classes`` None becomes the number of
    class folders in the training folder; a number the config states or
    counted from another folder (before ``--data-root`` moved the data) must
    equal it. Top-k accuracy stops at that number."""
    head = cfg.get('model', {}).get('head')
    loader = cfg.get('train_dataloader') or {}
    dataset = loader.get('dataset') or {}
    if not isinstance(head, dict) or dataset.get('type') != 'CustomDataset' or dataset.get('ann_file'):
        return
    folder = class_folder_root(dataset)
    if not osp.isdir(folder):
        return  # check_data names the missing folder when the data is needed
    classes = class_folders(dataset)
    if not classes:
        raise DataNotFoundError(f'{folder} holds no class folders; expected {folder}/<class>/<image>.')
    stated = head.get('num_classes')
    if stated is not None and stated != len(classes):
        raise ConfigError(f'model.head.num_classes is {stated}, but {folder} holds {len(classes)} class folders: '
                          f'set model.head.num_classes and data_preprocessor.num_classes to {len(classes)}.')
    head['num_classes'] = len(classes)
    if isinstance(cfg.get('data_preprocessor'), dict):
        cfg.data_preprocessor['num_classes'] = len(classes)
    for evaluator in evaluators(cfg):
        if evaluator.get('type') == 'Accuracy' and isinstance(evaluator.get('topk'), (list, tuple)):
            evaluator['topk'] = tuple(k for k in evaluator['topk'] if k <= len(classes)) or (1,)


# --------------------------------------------------------------------------
# Its parts


def type_name(part) -> str:
    """The type a config part names, without its scope ('mmdet.CocoDataset':
    'CocoDataset'), or the name of a class given as type; '' for none."""
    kind = part.get('type', '') if isinstance(part, dict) else ''
    return kind.split('.')[-1] if isinstance(kind, str) else getattr(kind, '__name__', '')


def iter_datasets(cfg):
    """(dataloader name, dataset cfg) for every dataset in the config,
    looking inside wrappers such as RepeatDataset or ConcatDataset."""
    for name in DATALOADERS:
        loader = cfg.get(name)
        if not loader:
            continue
        stack = [loader.get('dataset')]
        while stack:
            dataset = stack.pop()
            if isinstance(dataset, (list, tuple)):
                stack.extend(dataset)
            elif isinstance(dataset, dict):
                inner = dataset.get('dataset', dataset.get('datasets'))
                if inner is not None:
                    stack.append(inner)
                else:
                    yield name, dataset


def class_folder_root(dataset: dict) -> str:
    """The folder holding one subfolder per class of an mmpretrain
    CustomDataset (``data_prefix`` is a path, or a dict with ``img_path``)."""
    prefix = dataset.get('data_prefix') or ''
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path') or ''
    return osp.join(dataset.get('data_root') or '', prefix)


def class_folders(dataset: dict) -> list[str]:
    """The class folders of a CustomDataset in the order mmpretrain numbers
    them: sorted, hidden ones included (its find_folders lists every folder)."""
    return sorted(entry.name for entry in os.scandir(class_folder_root(dataset)) if entry.is_dir())


def dataset_setting(dataset: dict, key: str, scope: str | None, fallback=None):
    """``key`` of a dataset as its class will use it: the config's value,
    else the default of the registered class (ADE20KDataset reduces label
    zero, CityscapesDataset has its own file suffixes), else ``fallback``."""
    if key in dataset:
        return dataset[key]
    kind = dataset.get('type')
    kind = registered_type(kind, scope) if isinstance(kind, str) else kind
    for owner in (kind.__mro__ if inspect.isclass(kind) else ()):
        try:
            parameter = inspect.signature(owner.__init__).parameters.get(key)
        except (TypeError, ValueError):
            continue
        if parameter is not None and parameter.default is not parameter.empty:
            return parameter.default
    return fallback


def evaluators(cfg: Config, names=EVALUATORS):
    """Every evaluator dict of the config (val and test, or ``names``; single or listed)."""
    for name in names:
        evaluator = cfg.get(name)
        for item in evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]:
            if isinstance(item, dict):
                yield item


# --------------------------------------------------------------------------
# Mistakes said in one line


def check_variable_options(cfg: Config, path: str, options: dict) -> None:
    """Refuse a --cfg-options key that sets a variable of the config other
    keys were built from (``image_size``, ``max_iters``, ``data_root``,
    ``train_pipeline``): mmengine put its value into them when it read the
    file, so the new value would reach nothing but itself and the run would
    go on with the old one (open-mmlab/mmcv#664, open-mmlab/mmdetection#6915).
    Keys the runner reads itself are not variables here: setting
    ``val_dataloader`` changes validation, whatever copied it."""
    candidates = [key for key in options if key.split('.')[0] not in RUNNER_KEYS]
    if not candidates:
        return  # the usual case: the config files need not be read again
    readers = variable_readers(path)
    for key in candidates:
        name = key.split('.')[0]
        if not readers.get(name):
            continue
        built = sorted(readers[name])
        examples = [p for p in _paths_holding(cfg, cfg.get(name), _reached(name, readers)) if p != name][:4]
        shown = f' (e.g. {", ".join(examples)})' if examples else ''
        instead = f'Set the keys built from it{shown}, or write a config that inherits this one and sets them.'
        if name == 'data_root':
            instead = ('The tools that read a dataset (train.py, test.py and others: see --help) take --data-root '
                       'DIR instead, which moves every dataset and annotation file of the config; the tools without '
                       'it read no dataset.')
        raise ConfigError(f'{path}: --cfg-options {key}: {name} is a variable of the config, which mmengine put into '
                          f'{", ".join(built)} when it read the file; setting it afterwards changes nothing else, and '
                          f'the run would go on with the old value. {instead}')


def variable_readers(path: str) -> dict[str, set[str]]:
    """For each top-level name of a config file and its ``_base_`` files, the
    top-level keys whose value the file computed from it (``train_pipeline``
    for ``image_size``; ``{{_base_.x}}`` and ``_base_.x`` read a base's
    ``x``). JSON and YAML configs have no variables."""
    readers: dict[str, set[str]] = {}
    pending, seen = [path], set()
    while pending:
        file = pending.pop()
        if file in seen or not file.endswith('.py'):
            continue
        seen.add(file)
        with open(file, encoding='utf-8') as f:
            text = f.read()
        body = ast.parse(text).body
        assigned = {target.id for node in body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)}
        for node in body:
            if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
                continue
            for inner in ast.walk(node.value):
                if isinstance(inner, ast.Name) and inner.id in assigned:
                    readers.setdefault(inner.id, set()).add(node.targets[0].id)
                elif isinstance(inner, ast.Attribute) and getattr(inner.value, 'id', None) == '_base_':
                    readers.setdefault(inner.attr, set()).add(node.targets[0].id)
                elif isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    for base_name in re.findall(r'\{\{\s*_base_\.(\w+)', inner.value):
                        readers.setdefault(base_name, set()).add(node.targets[0].id)
        # mmengine's own reading of `_base_` (private, as is _get_cfg_path in resolve_config_path)
        pending += [Config._get_cfg_path(base, file)[0] for base in Config._get_base_files(file)]
    readers.pop('_base_', None)
    return readers


def _reached(name: str, readers: dict[str, set[str]]) -> set[str]:
    """The keys the runner reads that were built from ``name``, through
    other variables too (image_size -> train_pipeline -> train_dataloader)."""
    reached, pending = set(), [name]
    while pending:
        for reader in readers.get(pending.pop(), ()):
            if reader not in reached:
                reached.add(reader)
                pending.append(reader)
    return reached & set(RUNNER_KEYS)


def _paths_holding(cfg: Config, value, keys: set[str]) -> list[str]:
    """Dotted paths under ``keys`` whose value equals ``value`` (lists and
    tuples alike): where a variable's value went."""
    def plain(v):
        return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v
    wanted, found = plain(value), []
    if wanted is None or isinstance(wanted, bool):
        return found  # None and True are everywhere
    stack = [(key, cfg[key]) for key in sorted(keys, reverse=True) if key in cfg]
    while stack:
        where, node = stack.pop()
        if plain(node) == wanted:
            found.append(where)
        elif isinstance(node, dict):
            stack += [(f'{where}.{k}', v) for k, v in reversed(list(node.items()))]
        elif isinstance(node, (list, tuple)):
            stack += [(f'{where}.{i}', v) for i, v in reversed(list(enumerate(node)))]
    return found


def check_top_level_keys(cfg, source: str) -> None:
    """Refuse a top-level key that is a near miss of one the runner reads
    (``trian_cfg``); other unknown keys are the configs' own variables."""
    for key in cfg.keys():
        if key in RUNNER_KEYS:
            continue
        close = difflib.get_close_matches(key, RUNNER_KEYS, n=1, cutoff=0.85)
        if close:
            raise ConfigError(f'{source}: unknown key {key!r}, did you mean {close[0]!r}? '
                              'mmengine would ignore it silently.')


def _accepted_keywords(kind) -> set[str] | None:
    """The keywords a registered class (or function) takes, following
    ``**kwargs`` up its bases; None when something takes any keyword."""
    accepted = set()
    for owner in (kind.__mro__ if inspect.isclass(kind) else (kind,)):
        init = owner.__init__ if inspect.isclass(owner) else owner
        if init is object.__init__:
            return accepted
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        accepted |= {p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            return accepted - {'self'}
    return None


def registered_type(type_name: str, scope: str | None):
    """The class or function a ``type`` names, looked up as a build from the
    config's scope would: in the scope's registries (``mmdet.registry``'s
    MODELS, HOOKS, ...), which fall back to mmengine's, then in mmengine's."""
    import mmengine.registry
    from mmengine.registry import Registry
    modules = [mmengine.registry]
    if scope:
        try:
            modules.insert(0, importlib.import_module(f'{scope}.registry'))
        except ImportError:
            pass  # an unknown scope: mmengine's registries alone, as mmengine then builds
    for module in modules:
        for registry in vars(module).values():
            if isinstance(registry, Registry):
                found = registry.get(type_name)
                if found is not None:
                    return found
    return None


# Keys that the code building a part pops before calling its type, so no
# signature lists them: mmengine's _delete_ (merge), priority (hooks),
# constructor and paramwise_cfg (optimizer wrappers), _scope_ (registries).
BUILDER_KEYS = frozenset({'_delete_', '_scope_', 'type', 'priority', 'constructor', 'paramwise_cfg'})


def new_option_keys(cfg, options: dict) -> list[tuple[str, int]]:
    """The --cfg-options keys that add a key to a dict of ``cfg`` (not a
    top level key: check_top_level_keys judges those; nor a list item,
    which mmengine lets grow), each with the depth of the new part."""
    new = []
    for key in options:
        parts = key.split('.')
        depth, node = _reach(cfg, parts)
        if 0 < depth < len(parts) and isinstance(node, dict):
            new.append((key, depth))
    return new


def check_option_keys(merged, new_keys: list[tuple[str, int]], source: str) -> None:
    """Refuse a --cfg-options key that adds an option no one reads: one that
    the ``type`` of its dict does not take (a hook, optimizer, dataset or
    model), or, in a dict without a type, a near miss of a key it has.
    mmengine would keep it silently, or fail only when the part is built
    (after a whole epoch, for an evaluator). ``merged`` is the config with
    the options applied, so that a type changed in the same command is the
    one that judges; ``new_keys`` is :func:`new_option_keys` of the config
    before."""
    for key, depth in new_keys:
        parts = key.split('.')
        parent = merged
        for part in parts[:depth]:
            parent = parent[int(part)] if isinstance(parent, (list, tuple)) else parent[part]
        _refuse_new_key(parent, parts[depth], '.'.join(parts[:depth]), key, merged.get('default_scope'), source)


def _refuse_new_key(parent: dict, new: str, where: str, key: str, scope: str | None, source: str) -> None:
    if new in BUILDER_KEYS:
        return
    kind = registered_type(parent['type'], scope) if isinstance(parent.get('type'), str) else None
    if kind is not None:
        accepted = _accepted_keywords(kind)
        if accepted is None or new in accepted:
            return
        close = difflib.get_close_matches(new, sorted(accepted), n=1, cutoff=0.6)
        hint = f'; did you mean {close[0]!r}?' if close else f'; it takes {", ".join(sorted(accepted))}.'
        raise ConfigError(f'{source}: --cfg-options {key}: {parent["type"]} ({where}) has no option {new!r}{hint}')
    close = difflib.get_close_matches(new, [k for k in parent if isinstance(k, str) and k != new], n=1, cutoff=0.8)
    if close:
        raise ConfigError(f'{source}: --cfg-options {key}: {where} has no key {new!r}; did you mean {close[0]!r}? '
                          'A new key there would be ignored.')


@contextlib.contextmanager
def config_errors(source: str):
    """Inside, a misspelt ``type`` (mmengine's registry KeyError) or a class
    built from the config that rejects a keyword (a misspelt key, in the file
    or in --cfg-options) raises :class:`ConfigError`."""
    try:
        yield
    except KeyError as err:
        match = re.search(r'([\w.:]+) is not in the ([\w:]+) registry', str(err))
        if match is None:
            raise
        raise ConfigError(f'{source}: no type {match[1]!r} in the {match[2]} registry; check its spelling, and '
                          "that custom_imports names the package that registers it.") from err
    except TypeError as err:
        match = re.search(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'", str(err))
        if match is None:
            raise
        raise ConfigError(f'{source}: {match[1]} has no option {match[2]!r}; check its spelling in the config '
                          'or in --cfg-options.') from err


def without_build_prefixes(message: str) -> str:
    return _BUILD_PREFIX.sub('', message)
