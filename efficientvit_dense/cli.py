"""Argument handling shared by the tools/ command-line scripts."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from mmengine.config import DictAction

from .benchmark import BenchmarkError
from .complexity import UnknownModelError
from .config_checks import ConfigError, without_build_prefixes
from .data_checks import DataError, DataNotFoundError
from .inference import UnsupportedConfigError
from .models.weights import CheckpointError

# Errors a user can fix from the message alone: no traceback for these.
USER_ERRORS = (DataNotFoundError, DataError, ConfigError, FileExistsError, FileNotFoundError, CheckpointError,
               UnsupportedConfigError, UnknownModelError, BenchmarkError)


def parser_for(doc: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_run_args(parser: argparse.ArgumentParser, work_dir_help: str) -> None:
    """The options mmdet's train and test tools share."""
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument('--data-root', help="dataset root, replacing the config's data_root everywhere")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries: key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if hasattr(args, 'local_rank'):
        os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def run(fn: Callable[[], object]) -> None:
    """Call ``fn``; a user error ends the program with its message only."""
    try:
        fn()
    except USER_ERRORS as err:
        sys.exit(f'error: {user_message(err)}')


def user_message(err: Exception) -> str:
    """The error's own words: without the classes mmengine was building, and
    without the traceback a DataLoader worker wraps around it."""
    message = str(err)
    if 'Original Traceback' in message:
        message = message.strip().splitlines()[-1].split(': ', 1)[-1]
    return without_build_prefixes(message)
