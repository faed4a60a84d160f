"""Check our backbone against timm's efficientvit_msra and time both.

For every EfficientViT model M0-M5 it builds timm's reference with random
weights, loads them into our backbone in both public formats (timm and
official), prints the largest output difference to timm, then prints the
images/s of timm's forward_features, our backbone and our deployed backbone
(BatchNorm folded), all without the classifier, timed in turns.
"""
import torch

import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli
from efficientvit_dense.models import ARCH_SETTINGS


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('--archs', nargs='+', default=sorted(ARCH_SETTINGS), choices=sorted(ARCH_SETTINGS))
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--repeats', type=int, default=5)
    args = cli.parse(parser, argv)
    cli.run(lambda: print_comparison(args))


def print_comparison(args):
    # The library (and the OpenMMLab stack under it) loads once the arguments are checked.
    from efficientvit_dense.analysis.reference import compare_with_timm

    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size} at 224x224, '
          'backbones without classifier')
    header = f'{"model":<6} {"max|diff| timm":>15} {"official":>10} {"timm img/s":>11} {"ours img/s":>11} ' \
             f'{"deploy img/s":>13} {"deploy/timm":>12}'
    print(header)
    print('-' * len(header))
    for row in compare_with_timm(args.archs, args.batch_size, args.repeats):
        diff, speed = row['max_difference'], row['images_per_s']
        print(f'{row["arch"].upper():<6} {diff["timm"]:>15.2e} {diff["official"]:>10.2e} {speed["timm"]:>11.1f} '
              f'{speed["ours"]:>11.1f} {speed["deploy"]:>13.1f} {speed["deploy"] / speed["timm"]:>11.2f}x')


if __name__ == '__main__':
    main()
