"""Parameters and FLOPs of an EfficientViT arch (its ImageNet classifier, as
the paper's table) or of any config's model, at a given input size.

    python tools/get_flops.py m4                                 # 224x224
    python tools/get_flops.py configs/retinanet_efficientvit_m4_coco.py --shape 800 1333
    python tools/get_flops.py configs/fpn_efficientvit_m4_ade20k.py --shape 512

FLOPs count each multiply-add once (mmengine's counter, the convention of the
paper's table); norms, activations, softmax, resizing, pooling and
element-wise ops are not counted. Detectors and segmentors are counted up to
their raw head outputs, on a blank image; a two-stage detector's RoI heads
on the proposals its RPN gives that image (the tool says how many).
"""
import os.path as osp

import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('model', help='an arch (m0..m5) or a config file')
    cli.add_shape(parser)
    cli.add_cfg_options(parser, "override the config's entries: key=value")
    args = cli.parse(parser, argv)
    # The library (and the OpenMMLab stack under it) loads once the arguments are checked.
    from efficientvit_dense.analysis.complexity import CONVENTION, build_arch_classifier, build_config_model, count
    from efficientvit_dense.engine.config import load_config

    def run():
        height, width = cli.shape(args)
        if osp.isfile(args.model) or args.model.endswith('.py'):
            model, name = build_config_model(load_config(args.model, args.cfg_options)), osp.basename(args.model)
        else:
            model, name = build_arch_classifier(args.model), f'EfficientViT-{args.model.upper()} (ImageNet classifier)'
        result = count(model, height, width)
        print(f'{name}\ninput 3x{height}x{width}: {result["params"] / 1e6:.2f}M parameters, '
              f'{result["flops"] / 1e9:.3f} GFLOPs\n{CONVENTION}')
        if result['training_only_params']:
            print(f'The parameters include {result["training_only_params"] / 1e6:.2f}M of an auxiliary head that '
                  'trains only: inference runs without it (its FLOPs are not counted).')
        if result['rois']:
            print(f'The RoI heads ran on {" and ".join(map(str, result["rois"]))} boxes: the RPN\'s proposals on a '
                  'blank image. Their FLOPs grow with the proposals an image gets.')

    cli.run(run)


if __name__ == '__main__':
    main()
