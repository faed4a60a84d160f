"""Throughput (images/s at a batch size) and batch-1 latency (median and 90th
percentile) of a backbone or of a config's whole predict path, after a
warm-up, with the device, threads and versions recorded. Targets: an arch
(m0..m5: this project's backbone), timm:NAME or torchvision:NAME (their
backbone part, random weights), or a config file (the inferencer's
preprocessing, then normalisation, forward and post-processing such as NMS).
Modes combine: deploy, channels_last, compile, a precision (bf16; int8 with deploy; fp16 on GPUs),
onnxruntime.

    python tools/benchmark.py m4 --modes deploy --against timm:efficientvit_m4
    python tools/benchmark.py m5 --modes deploy --against torchvision:mobilenet_v3_large
    python tools/benchmark.py m4 --modes deploy bf16 --against timm:efficientvit_m4 timm:efficientvit_m4@bf16
    python tools/benchmark.py configs/retinanet_efficientvit_m4_coco.py --shape 800 1333 --batch-size 1 \\
        --modes deploy --against mmdet::retinanet/retinanet_r50_fpn_1x_coco.py

Results print as a table and are saved as JSON under --work-dir. The model
and its peers are timed in turns (one call of each per round), so a slow
spell of a shared machine falls on all of them; compare figures measured in
the same run.
"""
import torch

import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli
from efficientvit_dense.analysis.modes import MODE_HELP, positive_int


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('model', help='m0..m5, timm:NAME, torchvision:NAME or a config file')
    parser.add_argument('--against', nargs='+', default=[], help='peers timed in the same run (eager unless '
                        '--peer-modes, or modes of its own: PEER@deploy+bf16); the table gives the first model\'s '
                        'images/s over each one\'s')
    parser.add_argument('--modes', nargs='+', default=[], choices=sorted(MODE_HELP),
                        help='; '.join(f'{k}: {v}' for k, v in MODE_HELP.items()))
    parser.add_argument('--peer-modes', nargs='+', default=[], choices=sorted(MODE_HELP),
                        help='modes for every peer without its own (PEER@MODE+MODE, e.g. timm:efficientvit_m4@bf16)')
    parser.add_argument('--checkpoint', help="a config's trained weights (default: random), for the first model "
                        'and peers of its config file')
    cli.add_cfg_options(parser, "override the first model's config (and peers of its config file)")
    cli.add_shape(parser)
    parser.add_argument('--batch-size', type=positive_int, default=16)
    parser.add_argument('--warmup', type=positive_int, default=3, help='untimed calls of each model first')
    parser.add_argument('--repeats', type=positive_int, default=10)
    parser.add_argument('--threads', type=positive_int, help='CPU threads (default: torch\'s choice)')
    parser.add_argument('--device', type=cli.device, default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--work-dir', default='work_dirs/benchmark', help='where the JSON goes (default: %(default)s)')
    args = cli.parse(parser, argv)
    # The library (and the OpenMMLab stack under it) loads once the arguments are checked.
    from efficientvit_dense.analysis.benchmark import benchmark_together, precision_notes, timed_targets
    from efficientvit_dense.analysis.records import format_table, make_folder, save_records

    def run():
        if args.threads:
            torch.set_num_threads(args.threads)
        size = cli.shape(args)
        common = dict(size=size, batch_size=args.batch_size, device=args.device, work_dir=args.work_dir)
        make_folder(args.work_dir)  # before the timing, which can take minutes
        targets = timed_targets(args.model, args.modes, args.against, args.peer_modes, args.checkpoint,
                                args.cfg_options, **common)
        for note in dict.fromkeys(n for t in targets for n in precision_notes(t['record']['modes'], args.device)):
            print(note)
        records = benchmark_together(targets, args.batch_size, args.device, args.warmup, args.repeats)
        print(format_table(records))
        print(f'saved {save_records(records, args.work_dir)}')

    cli.run(run)


if __name__ == '__main__':
    main()
