#!/usr/bin/env python
"""Train a network from an experiment config, on one machine or under horovodrun.

    python scripts/train_imagenet.py --config hc_m10_i10.yaml
    python scripts/train_imagenet.py --config hc_m10_i10.yaml train.epochs=1 data.dataset=synthetic
    python scripts/train_imagenet.py --config configs/quickstart/fashion_mnist.yaml --resume

A bare config name is looked up under configs/; KEY=VALUE pairs override it.
Bad configuration ends with one line on stderr and exit code 2, before any work.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from hcnet.checkpoint import CheckpointError  # noqa: E402
from hcnet.config import ConfigError, load_config  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__)
    parser.add_argument('--config', required=True, help='config file or bare name under configs/')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help="resume: the run directory's last checkpoint, or a checkpoint path")
    parser.add_argument('overrides', nargs='*', metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    overrides = list(args.overrides) + ([] if args.resume is None else ['resume=%s' % args.resume])
    try:
        cfg = load_config(args.config, overrides)
        from hcnet.backend import get_backend
        from hcnet.engine import train
        result = train(cfg, get_backend())
    except (ConfigError, CheckpointError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    if result:
        print('final: epoch %d  val top-1 %.2f%%  top-5 %.2f%%'
              % (result['epoch'], result['val_top1'], result['val_top5']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
