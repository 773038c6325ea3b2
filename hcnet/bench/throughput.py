"""Training throughput (img/s) on synthetic data, ours beside GluonCV's MobileNetV3-Large.

    hcnet bench-train hc_m10_i10 hc_m15_i0 --batch-size 32 --input-size 224
    hcnet bench-train hc_effb0_m11_i10 --steps 10 --json bench.json

Every model runs the same step (forward, backward, Nesterov update, hybridized with
static allocation) on the same random batch; GluonCV's ``mobilenetv3_large`` is always
measured in the same run, and each model's ratio to it is reported.
"""
import argparse
import json
import sys
import time


import mxnet as mx
from mxnet import autograd, gluon

from ..fileio import write_text
from ..model_zoo import UnknownModelError, create_model

REFERENCE = 'mobilenetv3_large'


def throughput(name, batch, size, steps, warmup, ctx, classes=1000):
    net = create_model(name, classes=classes, ctx=ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), 'nag',
                            {'learning_rate': 0.01, 'momentum': 0.9, 'wd': 3e-5})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x = mx.nd.random.uniform(shape=(batch, 3, size, size), ctx=ctx)
    y = mx.nd.random.randint(0, classes, shape=(batch,), ctx=ctx).astype('float32')
    from tqdm import tqdm
    tic = None
    bar = tqdm(range(warmup + steps), desc=name, unit='step', leave=False)
    for i in bar:
        if i == warmup:
            mx.nd.waitall()
            tic = time.time()
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(batch)
        loss.wait_to_read()
        if tic is not None:
            bar.set_postfix(img_s='%.1f' % ((i - warmup + 1) * batch / (time.time() - tic)))
    mx.nd.waitall()
    return steps * batch / (time.time() - tic)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='hcnet bench-train', description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__)
    parser.add_argument('models', nargs='+', help='hcnet zoo or GluonCV names')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--steps', type=int, default=20, help='timed steps per model')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first')
    parser.add_argument('--gpu', type=int, default=None, help='GPU id (default: CPU)')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    ctx = mx.cpu() if args.gpu is None else mx.gpu(args.gpu)
    names = [REFERENCE] + [m for m in args.models if m != REFERENCE]
    for flag, value in (('--batch-size', args.batch_size), ('--input-size', args.input_size),
                        ('--steps', args.steps)):
        if value < 1:
            print('error: %s must be at least 1, got %d' % (flag, value), file=sys.stderr)
            return 2
    from gluoncv.model_zoo import get_model_list
    from ..model_zoo import is_model
    unknown = [n for n in names if not is_model(n) and n.lower() not in get_model_list()]
    if unknown:
        print('error: unknown model %r (neither an hcnet nor a GluonCV name)' % unknown[0],
              file=sys.stderr)
        return 2
    try:
        results = {n: throughput(n, args.batch_size, args.input_size, args.steps, args.warmup,
                                 ctx) for n in names}
    except UnknownModelError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    ref = results[REFERENCE]
    print('training throughput, batch %d, %dx%d, %s, %d timed steps'
          % (args.batch_size, args.input_size, args.input_size, ctx, args.steps))
    print('%-24s %10s %14s' % ('model', 'img/s', 'vs ' + REFERENCE))
    for name, speed in results.items():
        print('%-24s %10.1f %14.3f' % (name, speed, speed / ref))
    if args.json:
        doc = {'batch_size': args.batch_size, 'input_size': args.input_size,
               'context': str(ctx), 'img_per_s': results,
               'ratio_to_reference': {n: s / ref for n, s in results.items()}}
        try:
            write_text(args.json, json.dumps(doc, indent=2) + '\n')
        except OSError as err:
            print('error: cannot write %s (%s)' % (args.json, err.strerror or err),
                  file=sys.stderr)
            return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
