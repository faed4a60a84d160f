"""Accuracy against throughput from work dirs: a markdown table and a PNG.

    python tools/report.py work_dirs/* --out work_dirs/report

Each work dir contributes its last logged evaluation (box/mask AP, mIoU,
top-1) and its newest benchmark JSON (tools/benchmark.py --work-dir DIR; the
demos write their own). Rows timed under other settings are marked.
"""
import glob
import os.path as osp

import efficientvit_dense  # noqa: F401  (the shims; models register at the first build)
from efficientvit_dense import cli
from efficientvit_dense.analysis.records import make_folder
from efficientvit_dense.analysis.report import collect, plot, to_markdown
from efficientvit_dense.errors import InputNotFoundError, OutputExistsError


def main(argv=None):
    parser = cli.parser_for(__doc__)
    parser.add_argument('work_dirs', nargs='+', help='work dirs (shell globs work)')
    parser.add_argument('--out', default='work_dirs/report', help='writes OUT.md and OUT.png')
    parser.add_argument('--overwrite', action='store_true', help='replace an earlier report at --out')
    args = cli.parse(parser, argv)

    def run():
        matched = {pattern: [d for d in glob.glob(pattern) if osp.isdir(d)] for pattern in args.work_dirs}
        unmatched = [pattern for pattern, found in matched.items() if not found]
        if unmatched:  # a misspelt work dir would leave its row out of the table without a word
            raise InputNotFoundError(f'No folder matches {", ".join(unmatched)}: name existing work dirs.')
        dirs = sorted({d for found in matched.values() for d in found})
        rows = collect(dirs)
        if not rows:
            raise InputNotFoundError(f'No evaluation results or benchmark JSON under {", ".join(args.work_dirs)}.')
        for path in (args.out + '.md', args.out + '.png'):
            if osp.exists(path) and not args.overwrite:
                raise OutputExistsError(f'{path} already exists; pass --overwrite or another --out.')
        table = to_markdown(rows)
        make_folder(osp.dirname(osp.abspath(args.out)))
        with open(args.out + '.md', 'w') as f:
            f.write(table)
        plot(rows, args.out + '.png')
        print(table + f'\nwrote {args.out}.md and {args.out}.png')

    cli.run(run)


if __name__ == '__main__':
    main()
