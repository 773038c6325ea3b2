"""Report top-1 / top-5 of a checkpoint or a model-zoo network on a dataset.

    hcnet eval --config fashion_mnist --checkpoint runs/fashion_mnist/best.ckpt
    hcnet eval --config hc_m10_i10.yaml --checkpoint last.ckpt data.root=/data/imagenet
    hcnet eval --config hc_m10_i10.yaml model.pretrained=true     # the published weights

The config supplies the dataset and model settings (KEY=VALUE overrides them).
"""
import argparse
import json
import sys


from ..model_zoo import PretrainedError, load_params_file
from ..train.checkpoint import CheckpointError
from ..train.config import ConfigError, load_config


def main(argv=None):
    parser = argparse.ArgumentParser(prog='hcnet eval', description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__)
    parser.add_argument('--config', required=True, help='config file, or a bare name (see hcnet configs)')
    parser.add_argument('--checkpoint', help='a training checkpoint (.ckpt) or a .params file')
    parser.add_argument('--batch-size', type=int, default=None, help='default: train.batch_size')
    parser.add_argument('--json', action='store_true', help='print the result as JSON')
    parser.add_argument('overrides', nargs='*', metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        from ..train.backend import LocalBackend
        from ..train.checkpoint import load_checkpoint, restore
        from ..train.data import build_data
        from ..train.evaluate import evaluate
        from ..train.model import build_model, check_model_name
        check_model_name(cfg)
        backend = LocalBackend()
        ctx = backend.contexts(cfg)
        batch = (args.batch_size or cfg['train.batch_size']) * len(ctx)
        data = build_data(cfg, batch_size=batch, for_training=False)
        try:
            net = build_model(cfg, ctx)
            if args.checkpoint:
                if args.checkpoint.endswith('.params'):
                    # float16 files are cast; another architecture is one line naming it
                    load_params_file(net, args.checkpoint, ctx)
                else:
                    restore(load_checkpoint(args.checkpoint), net)
            net.hybridize(static_alloc=True)
            top1, top5, n = evaluate(net, data.val, ctx)
        finally:
            data.close()    # image_folder's decoding workers
    except (ConfigError, CheckpointError, PretrainedError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    result = {'model': cfg['model.name'], 'dataset': cfg['data.dataset'], 'images': n,
              'top1': round(top1, 4), 'top5': round(top5, 4), 'skipped': data.skipped()}
    if args.json:
        print(json.dumps(result))
    else:
        print('%s on %s: top-1 %.2f%%  top-5 %.2f%%  (%d images, %d skipped)'
              % (result['model'], result['dataset'], top1, top5, n, result['skipped']))
    return 0

