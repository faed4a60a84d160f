"""The README's main job (`make demo`), with no downloads: generate the
synthetic shapes dataset under data/synthetic, train an EfficientViT-M0 model
on it on the CPU, evaluate it and print the metrics and the measured images
per second. --task detection (default): RetinaNet, COCO box AP;
--task segmentation (`make demo-seg`): Semantic FPN, mIoU per class;
--task classification (`make demo-cls`): the object crops, top-1 accuracy.
Running it again resumes the finished run and only re-evaluates."""
import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli
from efficientvit_dense.apps.demo import DEMOS, format_report, run_demo


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('--task', choices=sorted(DEMOS), default='detection')
    parser.add_argument('--work-dir', help='default: work_dirs/demo_<model>')
    parser.add_argument('--data-root', default='data/synthetic')
    cli.add_cfg_options(parser)
    args = cli.parse(parser, argv)

    def run():
        result = run_demo(args.task, args.work_dir, args.data_root, args.cfg_options)
        print()
        print(format_report(result))

    cli.run(run)


if __name__ == '__main__':
    main()
