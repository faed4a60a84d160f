"""Convert an EfficientViT checkpoint into this project's format
({'state_dict': ..., 'meta': ...}, timm-style backbone names).

    # an ImageNet backbone (official release or timm)
    python tools/convert_checkpoint.py efficientvit_m4.pth checkpoints/efficientvit_m4_evd.pth
    # a whole detector released by the authors (backbone, neck and heads, class names kept)
    python tools/convert_checkpoint.py retinanet_efficientvit_m4_fpn_1x_coco.pth checkpoints/retinanet_m4_evd.pth
    # only the backbone of a detector
    python tools/convert_checkpoint.py DETECTOR.pth BACKBONE.pth --backbone-only

Converting is optional: every tool and load_from read the release's layout as
it is. The input is read with torch.load(weights_only=True): a file that would
run code is refused. The output is never written over an existing file.
"""
import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli
from efficientvit_dense.models.weights import convert_checkpoint


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('src', help='official .pth, timm .pth/.bin, a detector checkpoint, or a URL')
    parser.add_argument('dst', help='output path (must not exist)')
    parser.add_argument('--backbone-only', action='store_true', help="keep only a whole model's backbone")
    parser.add_argument('--drop-head', action='store_true', help="leave out a backbone's ImageNet classifier")
    args = cli.parse(parser, argv)

    def run():
        meta = convert_checkpoint(args.src, args.dst, drop_head=args.drop_head, backbone_only=args.backbone_only)
        arch = f'EfficientViT-{meta["arch"].upper()}' if meta['arch'] else 'unknown arch'
        if meta['kind'] == 'whole model':
            classes = len(meta.get('dataset_meta', {}).get('classes', ()))
            what = f'whole model, {arch} backbone, {classes or "no"} class names'
        else:
            what = f'{arch}, head {"kept" if meta["has_head"] else "dropped"}'
        layout = {'native': 'timm'}.get(meta['source_format'], meta['source_format'])  # timm's names are ours
        print(f'{args.src} ({layout} format, {what}) -> {args.dst}')

    cli.run(run)


if __name__ == '__main__':
    main()
