"""The README's main job (`make demo`), with no downloads: generate the
synthetic shapes dataset under data/synthetic, train RetinaNet with an
EfficientViT-M0 backbone on it on the CPU, evaluate with the COCO metric and
print the AP table and the measured images per second. Running it again
resumes the finished run and only re-evaluates."""
from mmengine.config import DictAction

import efficientvit_dense  # noqa: F401
from efficientvit_dense import cli
from efficientvit_dense.demo import format_report, run_detection_demo


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('--work-dir', default='work_dirs/demo_retinanet_efficientvit_m0')
    parser.add_argument('--data-root', default='data/synthetic')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries: key=value')
    args = parser.parse_args(argv)
    result = run_detection_demo(args.work_dir, args.data_root, args.cfg_options)
    print()
    print(format_report(result))


if __name__ == '__main__':
    main()
