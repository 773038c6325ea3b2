"""Train a network from an experiment config, on one machine or under horovodrun.

    hcnet train --config hc_m10_i10.yaml
    hcnet train --config hc_m10_i10.yaml train.epochs=1 data.dataset=synthetic \
        train.gpus=[] train.dtype=float32                   # a CPU smoke run
    hcnet train --config fashion_mnist --resume
    horovodrun -np 8 -H host1:8 hcnet train --config hc_m10_i10_dist

A bare config name is looked up in $HCNET_CONFIG_PATH, then in the configs shipped with
hcnet (``hcnet configs`` lists them); KEY=VALUE pairs override it.
Bad configuration ends with one line on stderr and exit code 2, before any work. Exit codes:
0 done, 2 bad input (config, checkpoint, pretrained weights), 3 the loss diverged (NaN/inf),
74 the run's files cannot be written (disk full, read-only), 75 stopped by SIGTERM or
SIGUSR1 after writing a checkpoint at the step it stopped at (continue with resume=auto),
130 interrupted (Ctrl-C).
"""
import argparse
import sys


from ..model_zoo import PretrainedError
from ..train.checkpoint import CheckpointError
from ..train.config import ConfigError, load_config


def main(argv=None):
    parser = argparse.ArgumentParser(prog='hcnet train', description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__)
    parser.add_argument('--config', required=True, help='config file, or a bare name (see hcnet configs)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help="resume: the run directory's last checkpoint, or a checkpoint path")
    parser.add_argument('overrides', nargs='*', metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    overrides = list(args.overrides) + ([] if args.resume is None else ['resume=%s' % args.resume])
    from ..train import loop
    try:
        cfg = load_config(args.config, overrides)
        from ..train.backend import get_backend
        result = loop.train(cfg, get_backend())
    except (ConfigError, CheckpointError, PretrainedError) as err:
        print('error: %s' % err, file=sys.stderr)
        return loop.EXIT_USER
    except loop.Diverged as err:
        print('error: %s' % err, file=sys.stderr)
        return loop.EXIT_DIVERGED
    except OSError as err:                     # a full disk, a read-only or vanished output
        where = ' (%s)' % err.filename if getattr(err, 'filename', None) else ''
        message = 'cannot write the run\'s files: %s%s' % (err.strerror or err, where)
        loop.log.error(message)                # into train.log too, where it exists
        print('error: %s' % message, file=sys.stderr)
        return loop.EXIT_IO
    except loop.Preempted as err:          # SIGTERM / SIGUSR1: checkpoint written
        print(err, file=sys.stderr)
        return loop.EXIT_PREEMPTED
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return loop.EXIT_INTERRUPTED
    if result:
        print('final: epoch %d  val top-1 %.2f%%  top-5 %.2f%%'
              % (result['epoch'], result['val_top1'], result['val_top5']))
    return 0

