"""The offline backbone comparison (`make compare`), with no downloads:
generate the synthetic shapes dataset, train RetinaNet with EfficientViT-M0,
EfficientViT-M4, MobileNetV2 and ResNet-18 on it with one budget
(configs/demo/compare/), time their whole predict paths in turns in one run
(tools/benchmark.py's timing, BN folded by default), and write the table and
the accuracy-against-images/s plot (tools/report.py's) under --work-dir.
About 30 minutes on 2 CPU cores; run again, finished models are not trained
again and a new report is written beside the old ones.

    python tools/compare_backbones.py
    python tools/compare_backbones.py --configs configs/demo/compare/*.py my_config.py
"""
import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli
from efficientvit_dense.analysis.modes import MODE_HELP, positive_int


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('--configs', nargs='+',
                        help='detection configs trained at one image size (default: configs/demo/compare/)')
    parser.add_argument('--work-dir', default='work_dirs/compare', help='one work dir per config, and the reports')
    parser.add_argument('--data-root', default='data/synthetic')
    parser.add_argument('--modes', nargs='*', default=['deploy'], choices=sorted(set(MODE_HELP) - {'onnxruntime'}),
                        help='timing modes for every model (none: eager)')
    parser.add_argument('--batch-size', type=positive_int, default=8, help='images per timed predict call')
    parser.add_argument('--repeats', type=positive_int, default=10)
    cli.add_cfg_options(parser, 'override every config: key=value')
    args = cli.parse(parser, argv)
    # The library (and the OpenMMLab stack under it) loads once the arguments are checked.
    from efficientvit_dense.apps.comparison import COMPARISON_CONFIGS, compare_backbones

    def run():
        result = compare_backbones(args.configs or list(COMPARISON_CONFIGS), args.work_dir, args.data_root,
                                   args.modes, args.batch_size, repeats=args.repeats, cfg_options=args.cfg_options)
        print('\n' + result['table'])
        print(f'wrote {result["markdown"]} and {result["plot"]} ({result["wall_s"] / 60:.1f} min)')

    cli.run(run)


if __name__ == '__main__':
    main()
