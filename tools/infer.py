"""Run a trained checkpoint on images (a file, several, or a folder) and
write the pictures with its predictions drawn.

    python tools/infer.py configs/retinanet_efficientvit_m4_coco.py epoch_12.pth demo.jpg --out-dir vis/
    python tools/infer.py CONFIG CHECKPOINT images/ --out-dir vis/ --score-thr 0.4
    python tools/infer.py configs/fpn_efficientvit_m4_ade20k.py iter_40000.pth images/ --opacity 0.6
    python tools/infer.py configs/cls_efficientvit_m5_pets.py epoch_300.pth cat.jpg --topk 3

Detectors draw boxes (and masks for Mask R-CNN) into OUT_DIR/vis/;
segmentors blend the predicted class colours over each image into OUT_DIR/vis/
and write the label maps (class index per pixel) to OUT_DIR/pred/<image stem>.png;
classifiers print the top-k classes and scores of each image. Outputs keep
the input folder's structure (images/a/x.jpg -> OUT_DIR/vis/a/x.jpg); an
earlier run's outputs are replaced only with --overwrite.
"""
import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('inputs', nargs='+', help='image files or folders')
    parser.add_argument('--out-dir', default='work_dirs/infer',
                        help='where the drawn pictures go (default: %(default)s)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detectors: draw detections scoring at least this')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='segmentors: weight of the class colours over the image')
    parser.add_argument('--topk', type=int, default=5, help='classifiers: print this many classes per image')
    parser.add_argument('--overwrite', action='store_true', help="replace an earlier run's outputs in --out-dir")
    parser.add_argument('--device', type=cli.device, default='cpu')
    cli.add_cfg_options(parser)
    args = cli.parse(parser, argv)
    # The library (and the OpenMMLab stack under it) loads once the arguments are checked.
    from efficientvit_dense.engine.config import load_config
    from efficientvit_dense.engine.inference import classify, infer

    def run():
        cfg = load_config(args.config, args.cfg_options)
        if cfg.get('default_scope') == 'mmpretrain':
            for image, top in classify(cfg, args.checkpoint, args.inputs, topk=args.topk, device=args.device):
                print(f'{image}: ' + ', '.join(f'{name} {score:.3f}' for name, score in top))
            return
        written = infer(cfg, args.checkpoint, args.inputs, args.out_dir, score_thr=args.score_thr,
                        opacity=args.opacity, device=args.device, overwrite=args.overwrite)
        print(f'wrote {len(written)} pictures to {args.out_dir}/vis')

    cli.run(run)


if __name__ == '__main__':
    main()
