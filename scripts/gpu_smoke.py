"""Ten-minute smoke test of the GPU paths, to run first on a new GPU machine or cluster.

    python scripts/gpu_smoke.py                       # one GPU
    python scripts/gpu_smoke.py --gpus 8              # the paper's single-node recipe's path
    python scripts/gpu_smoke.py --gpus 8 --horovod "-np 16 -H node1:8,node2:8"
    python scripts/gpu_smoke.py --dry-run             # the same steps on this CPU

Each step is a short training run on synthetic data through ``hcnet train`` (a few hundred
steps at most), checked for its exit code and its final line:

1. the environment: MXNet's GPUs and CUDA/cuDNN/NCCL features, Horovod's build;
2. float16 the GluonCV way (``net.cast`` + multi-precision SGD) on ``--gpus`` GPUs;
3. float16 with AMP (dynamic loss scaling, ``update_on_kvstore=False``);
4. preemption: SIGTERM in the middle of a run, then ``resume=auto`` continues it;
5. with ``--horovod ARGS``: the distributed recipe (LB-SGD, Mixup, ``data.shard=node``,
   float16 gradients) under ``horovodrun ARGS``.

``--dry-run`` runs every step on the CPU instead (float32, ``--gpus`` CPU contexts,
``horovodrun -np 2 -H localhost:2 --gloo``), which is how CI checks that this script works.
Exit code: 0 when every step passed, 1 otherwise. docs/gpu.md shows the output to expect.
"""
import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TINY = ['data.dataset=synthetic', 'data.synthetic_samples=2048', 'model.classes=10',
        'train.epochs=2',
        'train.steps_per_epoch=20', 'data.val_samples=256', 'train.log_interval=10',
        'checkpoint.every=1']


def _hcnet():
    return [sys.executable, '-m', 'hcnet']


def _devices(args):
    if args.dry_run:
        return ['train.gpus=[]', 'train.cpu_devices=%d' % args.gpus, 'data.input_size=32',
                'train.batch_size=8']
    return ['train.gpus=[%s]' % ','.join(str(i) for i in range(args.gpus)),
            'train.batch_size=%d' % args.batch_size]


def _run(name, cmd, results, timeout=900):
    tic = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    # (under horovodrun the lines carry a "[0]<stdout>:" prefix)
    final = [l[l.index('final:'):] for l in proc.stdout.splitlines() if 'final:' in l]
    ok = proc.returncode == 0 and bool(final)
    detail = final[-1] if final else (proc.stderr.strip().splitlines() or ['no output'])[-1]
    results.append(ok)
    print('%-28s %s  %5.0fs  %s' % (name, 'ok  ' if ok else 'FAIL', time.time() - tic, detail),
          flush=True)
    if not ok:
        print('  command: %s' % ' '.join(shlex.quote(c) for c in cmd))
    return proc


def environment(args, results):
    import mxnet as mx
    features = mx.runtime.Features()
    gpus = mx.context.num_gpus()
    want = 0 if args.dry_run else args.gpus
    ok = gpus >= want
    results.append(ok)
    print('%-28s %s  mxnet %s, %d GPU(s), CUDA %s, cuDNN %s, NCCL %s' % (
        'environment', 'ok  ' if ok else 'FAIL', mx.__version__, gpus,
        features.is_enabled('CUDA'), features.is_enabled('CUDNN'), features.is_enabled('NCCL')),
        flush=True)
    if args.horovod or (args.dry_run and shutil.which('horovodrun')):
        try:
            out = subprocess.run(['horovodrun', '--check-build'], capture_output=True,
                                 text=True, timeout=120).stdout
            hvd_ok = '[X] MXNet' in out
        except (OSError, subprocess.TimeoutExpired):
            out, hvd_ok = '', False
        results.append(hvd_ok or not args.horovod)
        print('%-28s %s  %s' % ('horovod build', 'ok  ' if hvd_ok else 'FAIL',
                                'MXNet ops built' if hvd_ok else 'horovodrun --check-build: '
                                'no MXNet'), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--gpus', type=int, default=1, help='GPUs of this machine to use')
    parser.add_argument('--batch-size', type=int, default=64, help='images per GPU')
    parser.add_argument('--horovod', default='', help='horovodrun arguments, e.g. "-np 16 '
                        '-H node1:8,node2:8" (empty: no distributed step)')
    parser.add_argument('--dry-run', action='store_true', help='every step on this CPU')
    parser.add_argument('--out', default=None, help='run directories (default: a temporary one)')
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix='hcnet_smoke_')
    results = []
    environment(args, results)
    dev = _devices(args)
    # on the CPU: float32 for net.cast's float16, bfloat16 AMP for float16 AMP
    half = ['train.dtype=float32'] if args.dry_run else ['train.dtype=float16']
    base = _hcnet() + ['train', '--config', 'hc_m10_i10'] + TINY + dev
    _run('float16 (net.cast)', base + half + ['output_dir=%s/cast' % out], results)
    _run('float16 (AMP)', base + (['train.dtype=bfloat16'] if args.dry_run else
                                  ['train.dtype=float16', 'train.amp=true'])
         + ['output_dir=%s/amp' % out], results)

    # preemption: SIGTERM once the run has logged a few steps, then resume=auto
    run_dir = '%s/preempt' % out
    cmd = base + half + ['output_dir=%s' % run_dir, 'train.log_interval=1']
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    steps = os.path.join(run_dir, 'steps.jsonl')
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if os.path.isfile(steps) and open(steps).read().count('\n') >= 25:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.2)
    code = proc.wait(timeout=600)
    results.append(code == 75)
    print('%-28s %s  exit %d (75: stopped with a checkpoint)'
          % ('SIGTERM mid-epoch', 'ok  ' if code == 75 else 'FAIL', code), flush=True)
    _run('resume=auto', cmd + ['resume=auto'], results)

    if args.horovod or (args.dry_run and shutil.which('horovodrun')):
        hvd = (['-np', '2', '-H', 'localhost:2', '--gloo'] if args.dry_run
               else shlex.split(args.horovod))
        dist = (['horovodrun'] + hvd + _hcnet() + ['train', '--config', 'hc_m10_i10_dist']
                + TINY + (['train.gpus=[]', 'train.dtype=float32', 'data.input_size=32',
                           'train.batch_size=8'] if args.dry_run
                          else ['train.batch_size=%d' % args.batch_size])
                + ['train.fp16_allreduce=true', 'output_dir=%s/horovod' % out])
        _run('horovod (distributed recipe)', dist, results, timeout=1800)
    print('%d of %d steps passed; run directories in %s' % (sum(results), len(results), out))
    return 0 if all(results) else 1


if __name__ == '__main__':
    sys.exit(main())
