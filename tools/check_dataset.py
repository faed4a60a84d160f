"""Check a config's data before a long job: every split, every check the
runs make before their first iteration (paths, COCO files, ids, boxes, image
sizes against the files, label maps, class folders), plus every label map's
values; no model is built. Prints what each split holds and exits 1 at the
first fault, with one line naming the file and what to do.

    python tools/check_dataset.py configs/retinanet_efficientvit_m4_coco.py
    python tools/check_dataset.py configs/custom/my_dataset.py --data-root /data/mine
"""
import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('config', help='config file')
    parser.add_argument('--data-root', help="dataset root, replacing the config's data_root everywhere")
    cli.add_cfg_options(parser)
    args = cli.parse(parser, argv)
    # The library (and the OpenMMLab stack under it) loads once the arguments are checked.
    from efficientvit_dense.engine.annotation_checks import format_summary
    from efficientvit_dense.engine.config import load_config
    from efficientvit_dense.engine.data_checks import check_inputs

    def run():
        cfg = load_config(args.config, args.cfg_options, data_root=args.data_root)
        print(format_summary(check_inputs(cfg, label_values=True)))
        print('no faults found')

    cli.run(run)


if __name__ == '__main__':
    main()
