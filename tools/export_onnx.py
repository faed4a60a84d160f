"""Export a backbone, classifier, detector or segmentor to ONNX in deploy
mode (BatchNorm folded), then run it with ONNX Runtime and print the largest
difference to PyTorch.

    python tools/export_onnx.py m4 --out work_dirs/onnx/efficientvit_m4.onnx
    python tools/export_onnx.py configs/retinanet_efficientvit_m4_coco.py --checkpoint CKPT --shape 800 1333 \\
        --out work_dirs/onnx/retinanet_m4.onnx

The graph takes the normalised image batch and returns raw tensors (a
backbone's maps, logits, a detector's per-level class scores and box deltas);
anchors, decoding and NMS stay in Python. One input size; dynamic batch.
"""
import os.path as osp

import torch

import efficientvit_dense  # noqa: F401  (shims and registrations)
from efficientvit_dense import cli
from efficientvit_dense.analysis.benchmark import build_backbone
from efficientvit_dense.analysis.complexity import build_config_model
from efficientvit_dense.analysis.export import export_onnx, max_difference_to_pytorch
from efficientvit_dense.engine.checkpoint_fit import load_checked
from efficientvit_dense.engine.config import load_config
from efficientvit_dense.models import deploy


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('model', help='an arch (m0..m5) or a config file')
    parser.add_argument('--checkpoint', help="the config's trained weights (default: random)")
    cli.add_shape(parser)
    cli.add_cfg_options(parser, "override the config's entries: key=value")
    parser.add_argument('--out', required=True, help='the .onnx file to write (never overwritten)')
    parser.add_argument('--tolerance', type=float, default=1e-3, help='largest difference accepted')
    args = cli.parse(parser, argv)

    def run():
        size = cli.shape(args)
        if args.model.endswith('.py'):
            model = build_config_model(load_config(args.model, args.cfg_options))
            if args.checkpoint:
                load_checked(model, args.checkpoint)
        else:
            model, _ = build_backbone(args.model, size)
        model = deploy(model.eval())
        path = export_onnx(model, torch.randn(1, 3, *size), args.out)
        difference = max_difference_to_pytorch(model, path, torch.randn(2, 3, *size))
        print(f'wrote {path} ({osp.getsize(path) / 1e6:.1f} MB), input 3x{size[0]}x{size[1]}, deploy mode\n'
              f'ONNX Runtime vs PyTorch on a batch of 2: max |difference| = {difference:.2e}')
        if difference > args.tolerance:
            raise SystemExit(f'error: the difference exceeds --tolerance {args.tolerance}.')

    cli.run(run)


if __name__ == '__main__':
    main()
