"""Evaluate a checkpoint on a config's test split (mmdet, mmseg or
mmpretrain alike).

    python tools/test.py configs/retinanet_efficientvit_m4_coco.py work_dirs/.../epoch_12.pth
    python tools/test.py CONFIG CHECKPOINT --out results.pkl --show-dir vis/
"""
import argparse
import os
import sys

from mmengine.config import DictAction

import efficientvit_dense  # noqa: F401  (shims and registrations)
from efficientvit_dense.runner import DataNotFoundError, load_config, test


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation log goes')
    parser.add_argument('--out', help='also dump the raw predictions to this .pkl file')
    parser.add_argument('--show-dir', help='draw predictions on the test images into this folder')
    parser.add_argument('--data-root', help='dataset root, replacing the config\'s data_root everywhere')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries: key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options, args.work_dir, args.data_root)
        test(cfg, args.checkpoint, out=args.out, show_dir=args.show_dir, launcher=args.launcher)
    except (DataNotFoundError, FileExistsError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
