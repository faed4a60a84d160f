"""Train a detector, segmentor or classifier from a config (mmdet, mmseg or
mmpretrain alike), with the options mmdet's tools/train.py has.

    python tools/train.py configs/retinanet_efficientvit_m4_coco.py
    python tools/train.py CONFIG --work-dir work_dirs/run1 --resume
    python tools/train.py CONFIG --cfg-options model.backbone.init_cfg.checkpoint=efficientvit_m4.pth
"""
import argparse
import os
import sys

from mmengine.config import DictAction

import efficientvit_dense  # noqa: F401  (shims and registrations)
from efficientvit_dense.runner import DataNotFoundError, load_config, train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CHECKPOINT',
                        help='resume from CHECKPOINT, or from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by your total batch size / the config\'s base batch size')
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
        resume = True if args.resume == 'auto' else (args.resume or False)
        train(cfg, resume=resume, amp=args.amp, auto_scale_lr=args.auto_scale_lr, launcher=args.launcher)
    except (DataNotFoundError, FileExistsError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
