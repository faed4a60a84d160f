"""What each precision costs in accuracy: a trained checkpoint evaluated on
its config's test split in its deploy form in float32, bfloat16 and int8
(calibrated on images spread evenly over the training split), then the predict
paths timed in turns on one test batch, side by side.

    python tools/precision_cost.py configs/demo/retinanet_efficientvit_m0_synthetic.py \\
        work_dirs/demo_retinanet_efficientvit_m0/iter_1100.pth --work-dir work_dirs/demo_retinanet_efficientvit_m0

Logs go to WORK_DIR/<precision>/; the records to WORK_DIR/precision_<time>.json,
which tools/report.py reads as one row per precision. int8 parts are built
at the calibration's input size: evaluate at one input size.
"""
import os.path as osp

import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli
from efficientvit_dense.analysis.modes import CALIBRATION_IMAGES, PRECISIONS, positive_int


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('--precisions', nargs='+', default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument('--calibration-images', type=positive_int, default=CALIBRATION_IMAGES,
                        help='int8: how many training images calibrate the activation ranges')
    parser.add_argument('--work-dir', help='default: work_dirs/precision_cost/<config name>')
    parser.add_argument('--data-root', help="dataset root, replacing the config's data_root everywhere")
    cli.add_cfg_options(parser)
    args = cli.parse(parser, argv)
    # The library (and the OpenMMLab stack under it) loads once the arguments are checked.
    from efficientvit_dense.apps.precision_cost import format_cost, precision_cost

    def run():
        work_dir = args.work_dir or osp.join('work_dirs', 'precision_cost', osp.splitext(osp.basename(args.config))[0])
        records = precision_cost(args.config, args.checkpoint, work_dir, args.precisions, args.cfg_options,
                                 args.data_root, args.calibration_images)
        print(format_cost(records))

    cli.run(run)


if __name__ == '__main__':
    main()
