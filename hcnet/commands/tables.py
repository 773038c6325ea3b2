"""Print the paper's Tables 1-7 beside our measured complexity, and write MODEL_ZOO.md.

    hcnet tables                      # print all tables
    hcnet tables --table 3            # one table
    hcnet tables --zoo MODEL_ZOO.md   # also write the model-zoo page
    hcnet tables --check              # exit 1 if a reproducible column drifts > 0.5%

(``python scripts/tables.py`` is the same with ``--zoo`` defaulting to the checkout's
MODEL_ZOO.md.) Ours are measured from the built networks (hcnet.count) in the paper's
counting convention; MobileNetV3 rows are also compared as differences from the None row
(the "anchored" column), see shared/reference/paper-tables.md.
"""
import argparse
import sys

from ..fileio import write_text
from ..paper.baselines import render_baselines
from ..paper.irnet_table4 import render_irnet_table
from ..paper.reference import TABLES, TOLERANCE
from ..paper.reproduce import reproduce
from ..paper.tables import render_table, render_zoo


def main(argv=None, default_zoo=None):
    parser = argparse.ArgumentParser(prog='hcnet tables', description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('--table', type=int, choices=sorted(TABLES), help='print one table')
    parser.add_argument('--check', action='store_true',
                        help='exit 1 if a reproducible column drifts more than 0.5%%')
    parser.add_argument('--zoo', default=default_zoo,
                        help='write the model-zoo page there (default: %s)'
                             % (default_zoo or 'not written'))
    parser.add_argument('--no-zoo', action='store_true', help='do not write the model-zoo page')
    parser.add_argument('--irnet', action='store_true', help='also print the IR-Net layer table')
    parser.add_argument('--baselines', action='store_true', help='also print the baselines')
    args = parser.parse_args(argv)

    results = reproduce()
    for number in ([args.table] if args.table else TABLES):
        print(render_table(number, results))
        print()
    if args.irnet:
        print(render_irnet_table() + '\n')
    if args.baselines:
        print(render_baselines() + '\n')
    if args.zoo and not args.no_zoo:
        try:
            write_text(args.zoo, render_zoo(results) + '\n')
        except OSError as err:
            print('error: cannot write %s (%s)' % (args.zoo, err.strerror or err), file=sys.stderr)
            return 2
        print('wrote %s' % args.zoo)

    checked = [(r, c) for r in results for c in r.row.check]
    failed = [(r, c) for r in results for c in r.failures()]
    print('%d of %d checked columns within %.1f%% of the paper'
          % (len(checked) - len(failed), len(checked), 100 * TOLERANCE))
    for r, c in failed:
        d = r.diff(c)
        print('DRIFT: Table %d %s (%s) %s: ours %.3f, paper %.3f (%+.2f%%)'
              % (r.row.table, r.row.label, r.row.model, c, r.ours(c), getattr(r.row, c),
                 100 * d[1]))
    unchecked = [(r.row, c) for r in results for c in ('madds', 'params')
                 if c not in r.row.check and getattr(r.row, c) is not None]
    print('%d columns not reproducible (reasons under each table)' % len(unchecked))
    return 1 if args.check and failed else 0

