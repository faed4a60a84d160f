"""Evaluate a checkpoint on a config's test split (mmdet, mmseg or
mmpretrain alike).

    python tools/test.py configs/retinanet_efficientvit_m4_coco.py work_dirs/.../epoch_12.pth
    python tools/test.py CONFIG CHECKPOINT --out results.pkl --show-dir vis/
    python tools/test.py CONFIG CHECKPOINT --tta        # test-time augmentation: the config's (scales, flips)
    python tools/test.py CONFIG CHECKPOINT --precision bfloat16   # the deploy form in bfloat16 (or int8, float32)
"""
import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli
from efficientvit_dense.analysis.modes import PRECISIONS


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    cli.add_run_args(parser, 'where the evaluation log goes')
    parser.add_argument('--out', help='also dump the raw predictions to this .pkl file')
    parser.add_argument('--show-dir', help='draw predictions on every test image, where each toolbox\'s own test.py '
                        'puts them: a detector\'s into WORK_DIR/<timestamp>/SHOW_DIR, a segmentor\'s into '
                        'SHOW_DIR/vis_data/vis_image, a classifier\'s into SHOW_DIR; each named after its image\'s '
                        'path under the split\'s image folder')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation: the config\'s tta_model and tta_pipeline (the COCO and ADE20K '
                        'configs\': several scales, each flipped and not), else each image and its horizontal flip; '
                        'the predictions merged')
    parser.add_argument('--precision', choices=PRECISIONS,
                        help='evaluate the deploy form (BatchNorm folded) in this precision; int8 calibrates on '
                        'images spread evenly over the training split (tools/precision_cost.py compares them all)')
    args = cli.parse(parser, argv)
    # The library (and the OpenMMLab stack under it) loads once the arguments are checked.
    from efficientvit_dense.analysis.precision import DeployHook
    from efficientvit_dense.engine.config import load_config
    from efficientvit_dense.engine.runner import test
    hooks = [DeployHook(args.precision)] if args.precision else []
    cli.run(lambda: test(load_config(args.config, args.cfg_options, args.work_dir, args.data_root),
                         args.checkpoint, out=args.out, show_dir=args.show_dir, launcher=args.launcher, hooks=hooks,
                         tta=args.tta))


if __name__ == '__main__':
    main()
