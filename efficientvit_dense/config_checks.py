"""Config mistakes a user should hear about in one line: a misspelt
top-level key (mmengine ignores it silently) or keyword (the class's
TypeError, buried in a traceback)."""
from __future__ import annotations

import contextlib
import difflib
import re

# What mmengine's Runner.from_cfg and this project's runner read at the top level of a config.
RUNNER_KEYS = (
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg', 'val_cfg',
    'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from', 'resume', 'launcher', 'env_cfg',
    'log_processor', 'log_level', 'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'model_wrapper_cfg', 'find_unused_parameters', 'compile', 'strategy', 'data_checks')

# mmengine prefixes every error raised while building with the class it was building.
_BUILD_PREFIX = re.compile(r'class `\w+` in [\w/.]+\.py: ')


class ConfigError(ValueError):
    """A config that cannot be right, with the key and what to do."""


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


def without_build_prefixes(message: str) -> str:
    return _BUILD_PREFIX.sub('', message)


@contextlib.contextmanager
def config_errors(source: str):
    """Inside, a class built from the config that rejects a keyword (a
    misspelt key, in the file or in --cfg-options) raises :class:`ConfigError`."""
    try:
        yield
    except TypeError as err:
        match = re.search(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'", str(err))
        if match is None:
            raise
        raise ConfigError(f'{source}: {match[1]} has no option {match[2]!r}; check its spelling in the config '
                          'or in --cfg-options.') from err
