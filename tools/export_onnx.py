"""Export a backbone, classifier, detector or segmentor to ONNX in deploy
mode (BatchNorm folded), then run it with ONNX Runtime and print the largest
difference to PyTorch.

    python tools/export_onnx.py m4 --out work_dirs/onnx/efficientvit_m4.onnx
    python tools/export_onnx.py configs/retinanet_efficientvit_m4_coco.py --checkpoint CKPT --shape 800 1333 \\
        --out work_dirs/onnx/retinanet_m4.onnx

The graph takes the normalised image batch and returns raw tensors (a
backbone's maps, logits, a detector's per-level class scores and box deltas);
anchors, decoding and NMS stay in Python. One input size; dynamic batch.
--precision int8 writes ONNX Runtime's static QDQ quantisation of it,
calibrated on images spread evenly over the config's training split (resized
to --shape); the check then gives the difference relative to the largest
output, on two images of the test split, which calibration never sees.
bfloat16 has no ONNX Runtime CPU kernels: deploy it in PyTorch
(tools/benchmark.py --modes deploy bf16, tools/test.py --precision bfloat16).

    python tools/export_onnx.py configs/demo/cls_efficientvit_m0_synthetic.py --checkpoint CKPT --shape 96 \\
        --precision int8 --out work_dirs/onnx/cls_m0_int8.onnx
"""
import os.path as osp

import torch

import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli
from efficientvit_dense.analysis.modes import CALIBRATION_IMAGES, positive_int
from efficientvit_dense.errors import UnsupportedError


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('model', help='an arch (m0..m5) or a config file')
    parser.add_argument('--checkpoint', help="the config's trained weights, or for an arch the backbone's (ImageNet "
                        "in the official or timm format, or a detector's, segmentor's or classifier's backbone); "
                        'default: random')
    cli.add_shape(parser)
    cli.add_cfg_options(parser, "override the config's entries: key=value")
    parser.add_argument('--data-root', help="int8: the dataset root, replacing the config's data_root everywhere")
    parser.add_argument('--out', required=True, help='the .onnx file to write (never overwritten)')
    parser.add_argument('--precision', choices=('float32', 'int8'), default='float32')
    parser.add_argument('--calibration-images', type=positive_int, default=CALIBRATION_IMAGES,
                        help='int8: training images that calibrate the activation ranges')
    parser.add_argument('--tolerance', type=float, help='largest difference accepted (default: 1e-3 absolute in '
                        'float32; 0.1 of the largest output in int8)')
    args = cli.parse(parser, argv)
    # The library (and the OpenMMLab stack under it) loads once the arguments are checked.
    from efficientvit_dense.analysis.benchmark import build_backbone
    from efficientvit_dense.analysis.complexity import build_config_model
    from efficientvit_dense.analysis.export import export_onnx, max_difference_to_pytorch
    from efficientvit_dense.analysis.precision import onnx_int8_images
    from efficientvit_dense.analysis.quantize import export_onnx_int8
    from efficientvit_dense.engine.checkpoint_fit import load_checked
    from efficientvit_dense.engine.config import load_config
    from efficientvit_dense.models import deploy
    from efficientvit_dense.models.weights import load_backbone_weights

    def run():
        size = cli.shape(args)
        int8 = args.precision == 'int8'
        if int8 and not args.model.endswith('.py'):
            raise UnsupportedError('int8 calibrates on the training images of a config: pass a config file.')
        if args.model.endswith('.py'):
            cfg = load_config(args.model, args.cfg_options, data_root=args.data_root)
            model = build_config_model(cfg)
            if args.checkpoint:
                load_checked(model, args.checkpoint)
        else:
            model, _ = build_backbone(args.model, size)
            if args.checkpoint:  # official, timm or native names; a whole model's file gives its backbone
                print(load_backbone_weights(model, args.checkpoint)['message'])
        model = deploy(model.eval())
        if int8:
            calibration, check, calibrated_on = onnx_int8_images(model, cfg, args.calibration_images, size)
            path = export_onnx_int8(model, torch.randn(1, 3, *size), args.out, calibration)
        else:
            path = export_onnx(model, torch.randn(1, 3, *size), args.out)
            check = torch.randn(2, 3, *size)
        difference = max_difference_to_pytorch(model, path, check, relative=int8)
        tolerance = args.tolerance or (0.1 if int8 else 1e-3)
        kind = 'max |difference| / max |PyTorch output|' if int8 else 'max |difference|'
        print(f'wrote {path} ({osp.getsize(path) / 1e6:.1f} MB), input 3x{size[0]}x{size[1]}, deploy mode, '
              + (f'int8 {calibrated_on}' if int8 else 'float32')
              + f'\nONNX Runtime vs PyTorch float32 on {len(check)} images'
              + (' of the test split (not calibrated on)' if int8 else '') + f': {kind} = {difference:.2e}')
        if difference > tolerance:
            raise SystemExit(f'error: the difference exceeds the tolerance {tolerance} (--tolerance).')

    cli.run(run)


if __name__ == '__main__':
    main()
