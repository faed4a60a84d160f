"""Check our backbone against timm's efficientvit_msra and time both.

For every EfficientViT model M0-M5 it builds timm's reference with random
weights, loads them into our backbone in both public formats (timm and
official), prints the largest output difference to timm, then folds the
BatchNorms (deploy mode) and prints images/s against timm, timed in turns.
"""
import argparse
import copy

import torch

import efficientvit_dense  # noqa: F401
from efficientvit_dense.benchmark import images_per_second
from efficientvit_dense.models import ARCH_SETTINGS, EfficientViT
from efficientvit_dense.models.weights import load_state_into
from efficientvit_dense.reference import IMAGENET_224_WINDOWS, max_abs_difference_to_timm, random_timm_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--archs', nargs='+', default=sorted(ARCH_SETTINGS), choices=sorted(ARCH_SETTINGS))
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args(argv)

    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size} at 224x224')
    header = f'{"model":<6} {"max|diff| timm":>15} {"official":>10} {"timm img/s":>11} {"ours img/s":>11} ' \
             f'{"deploy img/s":>13} {"deploy/timm":>12}'
    print(header)
    print('-' * len(header))
    for arch in args.archs:
        reference = random_timm_model(arch)
        diffs = max_abs_difference_to_timm(arch, reference)
        ours = EfficientViT(arch, window_size=IMAGENET_224_WINDOWS).eval()
        load_state_into(ours, dict(reference.state_dict()))
        deployed = copy.deepcopy(ours).switch_to_deploy()
        speed = dict(zip(('timm', 'ours', 'deploy'),
                         images_per_second([reference, ours, deployed], args.batch_size, repeats=args.repeats)))
        print(f'{arch.upper():<6} {diffs["timm"]:>15.2e} {diffs["official"]:>10.2e} {speed["timm"]:>11.1f} '
              f'{speed["ours"]:>11.1f} {speed["deploy"]:>13.1f} {speed["deploy"] / speed["timm"]:>11.2f}x')


if __name__ == '__main__':
    main()
