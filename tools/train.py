"""Train a detector, segmentor or classifier from a config (mmdet, mmseg or
mmpretrain alike), with the options mmdet's tools/train.py has.

    python tools/train.py configs/retinanet_efficientvit_m4_coco.py
    python tools/train.py CONFIG --work-dir work_dirs/run1 --resume
    python tools/train.py CONFIG --amp            # float16 mixed precision on GPUs (--amp-dtype bfloat16)
    python tools/train.py CONFIG --cfg-options model.backbone.init_cfg.checkpoint=efficientvit_m4.pth
"""
import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli
from efficientvit_dense.engine.config import AMP_DTYPES, load_config


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('config', help='config file')
    cli.add_run_args(parser, 'where logs and checkpoints go (default work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CHECKPOINT',
                        help='resume from CHECKPOINT, or from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='mixed precision on a GPU (float16, dynamic loss scaling)')
    parser.add_argument('--amp-dtype', choices=AMP_DTYPES,
                        help='--amp in this dtype (float16 by default): bfloat16 needs no loss scaling (segmentors and '
                        'classifiers; not mmdet\'s detectors, whose mmcv ops lack it)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help="scale the learning rate by your total batch size / the config's base batch size")
    args = cli.parse(parser, argv)
    # The library (and the OpenMMLab stack under it) loads once the arguments are checked.
    from efficientvit_dense.engine.runner import train
    resume = True if args.resume == 'auto' else (args.resume or False)
    amp = args.amp_dtype or ('float16' if args.amp else None)
    cli.run(lambda: train(load_config(args.config, args.cfg_options, args.work_dir, args.data_root),
                          resume=resume, amp=amp, auto_scale_lr=args.auto_scale_lr, launcher=args.launcher))


if __name__ == '__main__':
    main()
