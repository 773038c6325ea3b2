"""List the experiment configs hcnet finds by bare name.

    hcnet configs                   # every name, grouped by directory
    hcnet configs mobilenetv3       # names containing a string
    HCNET_CONFIG_PATH=~/my_configs hcnet configs

Bare names (``--config hc_m10_i10``) are looked up in $HCNET_CONFIG_PATH's directories
first, then in the configs shipped inside the package.
"""
import argparse
import glob
import os

from ..train.config import config_dirs


def main(argv=None):
    parser = argparse.ArgumentParser(prog='hcnet configs', description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('filter', nargs='?', help='show names containing this')
    args = parser.parse_args(argv)
    for directory in config_dirs():
        files = sorted(glob.glob(os.path.join(glob.escape(directory), '**', '*.yaml'),
                                 recursive=True))
        rel = [os.path.relpath(f, directory) for f in files]
        rel = [r for r in rel if not r.startswith('_base')
               and (args.filter is None or args.filter in r)]
        print('%s:' % directory)
        for r in rel:
            print('  %-34s (%s)' % (os.path.splitext(os.path.basename(r))[0], r))
    return 0
