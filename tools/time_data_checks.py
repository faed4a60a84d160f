"""Time what the data checks add to a training start on a dataset of COCO
train2017's size (118,287 images, 860,068 boxes): generates it under DATA
(the images are hard links to a few JPEGs; about 1 minute, 220 MB), then
times the training split's checks alone (first pass, remembered) and
mmdet's own build of that split, which a training run's checks overlap;
then starts tools/train.py with the COCO RetinaNet-M4 config twice and
prints the seconds to training: with nothing remembered, and once the
files have passed. The figures in docs/reliability.md come from it.

    python tools/time_data_checks.py /tmp/coco_sized
"""
import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli
from efficientvit_dense.apps.check_cost import COCO_TRAIN2017, coco_sized, time_checks, time_starts


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('data', help='folder for the generated dataset (reused when made whole with these sizes)')
    parser.add_argument('--images', type=int, default=COCO_TRAIN2017['images'])
    parser.add_argument('--boxes', type=int, default=COCO_TRAIN2017['boxes'])
    args = cli.parse(parser, argv)

    def run():
        reused = coco_sized(args.data, args.images, args.boxes)
        print(f'{"reused" if reused else "generated"} {args.data}: {args.images} images, {args.boxes} boxes')
        for name, seconds in time_checks(args.data).items():
            print(f'{name}: {seconds:.1f} s')
        for name, seconds in time_starts(args.data).items():
            print(f'{name}: {seconds:.1f} s to training')

    cli.run(run)


if __name__ == '__main__':
    main()
