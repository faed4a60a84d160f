"""Convert an official-release or timm EfficientViT checkpoint into this
project's format ({'state_dict': ..., 'meta': ...}, timm-style names).

    python tools/convert_checkpoint.py efficientvit_m4.pth checkpoints/efficientvit_m4_evd.pth

The input is read with torch.load(weights_only=True): a file that would run
code is refused. The output is never written over an existing file.
"""
import argparse
import sys

from efficientvit_dense.models.weights import CheckpointError, convert_checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official .pth, timm .pth/.bin, or a URL')
    parser.add_argument('dst', help='output path (must not exist)')
    parser.add_argument('--drop-head', action='store_true', help='leave out the ImageNet classifier')
    args = parser.parse_args(argv)
    try:
        meta = convert_checkpoint(args.src, args.dst, drop_head=args.drop_head)
    except (CheckpointError, FileExistsError) as err:
        sys.exit(f'error: {err}')
    arch = meta['arch'] or 'unknown arch'
    print(f'{args.src} ({meta["source_format"]} format, EfficientViT-{arch.upper()}, '
          f'head {"kept" if meta["has_head"] else "dropped"}) -> {args.dst}')


if __name__ == '__main__':
    main()
