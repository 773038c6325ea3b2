"""Draw the paper's Figure 2 (ImageNet top-1 against MAdds), with your runs on it.

    hcnet figure2 --out docs/                        # the paper's points alone
    hcnet figure2 runs/hc_m10_i10 runs/irnet_a --out figures/

Writes OUT/figure2.png (two panels: (a) Figure 2 proper, Table 2's networks under 600 M
MAdds; (b) Table 4's, log scale) and OUT/figure2.md, the table of every point. The
paper's points are the quoted figures of Tables 2 and 4 (hcnet.paper.reference and
hcnet.paper.baselines: HC rows, human-designed and searched networks). Each RUN_DIR (a
training output directory: config.yaml and metrics.jsonl) is drawn at its best val_top1
and the MAdds hcnet.count measures on the network its config builds, at its
data.input_size (paper convention for HC networks, standard otherwise; both in the
table). Both files are written under a temporary name and renamed. Exit codes: 0 done,
2 a run directory that cannot be read (one line naming it), 74 OUT cannot be written.
"""
import argparse
import sys

from ..paper.figure2 import RunError, figure2


def main(argv=None):
    parser = argparse.ArgumentParser(prog='hcnet figure2', description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('runs', nargs='*', metavar='RUN_DIR',
                        help='training output directories (config.yaml + metrics.jsonl)')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--stem', default='figure2', help='file stem (default figure2)')
    args = parser.parse_args(argv)
    try:
        png, md, points, runs = figure2(args.out, args.runs, args.stem)
    except RunError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    except OSError as err:
        where = ' (%s)' % err.filename if getattr(err, 'filename', None) else ''
        print('error: cannot write the figure: %s%s' % (err.strerror or err, where),
              file=sys.stderr)
        return 74
    print('wrote %s and %s: %d paper points%s' % (
        png, md, len(points), ''.join('; %s: top-1 %.2f%% at %.1f M MAdds (%s)'
                                      % (r.run_dir, r.top1, r.madds, r.convention)
                                      for r in runs)))
    return 0
