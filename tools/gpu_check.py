"""The GPU check (`make gpu-check`): mmcv's CUDA ops against the CPU, 20
iterations of RetinaNet-M4 with mixed precision on synthetic images at
1333x800 and a test pass, then the speed of the M4 backbone (float32,
float16, compiled, CUDA graphs) and of RetinaNet-M4 against RetinaNet-R50 at
800x1333. Prints a short report and saves it as JSON under --work-dir.

    python tools/gpu_check.py
    python tools/gpu_check.py --backbone-batch 2048   # the paper's batch (M4: 15,914 images/s on a V100)
"""
import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('--work-dir', default='work_dirs/gpu_check', help='where the runs and the JSON go')
    parser.add_argument('--data-root', default='data/synthetic', help='where the synthetic images are made')
    parser.add_argument('--device', default='cuda', help='the GPU to check (cuda, cuda:1, ...)')
    parser.add_argument('--iters', type=int, help='training iterations (default: the check\'s plan)')
    parser.add_argument('--backbone-batch', type=int, help='the backbone\'s batch at 224x224 (default: the plan\'s)')
    parser.add_argument('--repeats', type=int, help='timed calls per model (default: the plan\'s)')
    args = cli.parse(parser, argv)
    # The library (and the OpenMMLab stack under it) loads once the arguments are checked.
    from efficientvit_dense.apps.gpu_check import Plan, format_report, run_gpu_check
    asked = dict(train_iters=args.iters, backbone_batch=args.backbone_batch, repeats=args.repeats)
    plan = Plan(device=args.device, **{name: value for name, value in asked.items() if value is not None})
    cli.run(lambda: print(format_report(run_gpu_check(args.work_dir, args.data_root, plan))))


if __name__ == '__main__':
    main()
