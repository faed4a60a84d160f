"""What every script in tools/ shares: its parser, the options several take
(run options as mmdet's tools have them, --cfg-options, --shape), and the
handling of errors: a :class:`UserError` prints one line and exits with
status 1; anything else (a bug) keeps its traceback."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from mmengine.config import DictAction

from .engine.config import without_build_prefixes
from .errors import UserError


def parser_for(doc: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_cfg_options(parser: argparse.ArgumentParser, help: str = 'override config entries: key=value') -> None:
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help=help)


def add_run_args(parser: argparse.ArgumentParser, work_dir_help: str) -> None:
    """The options mmdet's train and test tools share."""
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument('--data-root', help="dataset root, replacing the config's data_root everywhere")
    add_cfg_options(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_shape(parser: argparse.ArgumentParser, default: int = 224) -> None:
    parser.add_argument('--shape', type=int, nargs='+', default=[default], metavar='SIZE',
                        help='input height and width, or one size for both')


def shape(args: argparse.Namespace) -> tuple[int, int]:
    """(height, width) from ``--shape``."""
    if len(args.shape) > 2 or min(args.shape) < 1:
        raise UserError(f'--shape takes a height and a width, or one size for both, in pixels; got {args.shape}.')
    return tuple((args.shape * 2)[:2])


def device(text: str) -> str:
    """argparse's ``type`` for ``--device``: cpu, cuda or cuda:N, where this machine has it."""
    import torch
    try:
        chosen = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a device: cpu, cuda or cuda:N') from None
    if chosen.type == 'cuda':
        count = torch.cuda.device_count()
        if not count:
            raise argparse.ArgumentTypeError(f'{text}: no CUDA GPU is visible here; use --device cpu')
        if (chosen.index or 0) >= count:
            raise argparse.ArgumentTypeError(f'{text}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}')
    elif chosen.type != 'cpu':
        raise argparse.ArgumentTypeError(f'{text}: the tools run on cpu or cuda')
    return text


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if hasattr(args, 'local_rank'):
        os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def run(fn: Callable[[], object]) -> None:
    """Call ``fn``; a user error ends the program with its message only. A
    distributed run that finished takes its process group down before the
    interpreter does: Gloo's threads, left to the interpreter's teardown,
    could abort a rank with "terminate called without an active exception"
    after all the work was done (pytorch/pytorch#190489; not after an error,
    where the other ranks may still wait in a collective)."""
    try:
        fn()
    except UserError as err:
        sys.exit(f'error: {user_message(err)}')
    if 'torch.distributed' in sys.modules:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def user_message(err: Exception) -> str:
    """The error's own words: without the classes mmengine was building, and
    without the traceback a DataLoader worker wraps around it."""
    message = str(err)
    if 'Original Traceback' in message:
        message = message.strip().splitlines()[-1].split(': ', 1)[-1]
    return without_build_prefixes(message)
