"""The trainer end to end on CPU: learning, outputs, kill-and-resume, evaluation."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hcnet.checkpoint import load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'scripts', 'train_imagenet.py')
EVAL = os.path.join(ROOT, 'scripts', 'eval_imagenet.py')
FMNIST = '/usr/share/datasets/fashion-mnist'

# a small, fast, deterministic run: 32x32 synthetic images, 12 steps per epoch
SMALL = ['data.dataset=synthetic', 'data.synthetic_samples=384', 'data.input_size=32',
         'model.classes=10', 'train.batch_size=32', 'train.reference_batch=32', 'train.lr=0.05',
         'train.warmup_epochs=1', 'train.dtype=float32', 'train.gpus=[]', 'data.num_workers=0',
         'checkpoint.every=1', 'checkpoint.keep=2']


def run(args, **kwargs):
    return subprocess.run([sys.executable, TRAIN, '--config', 'hc_m10_i10.yaml'] + args,
                          capture_output=True, text=True, timeout=600, **kwargs)


def metrics(out):
    with open(os.path.join(out, 'metrics.jsonl')) as f:
        return [json.loads(line) for line in f]


@pytest.mark.skipif(not os.path.isdir(FMNIST), reason='needs Debian dataset-fashion-mnist '
                    '(apt-get install dataset-fashion-mnist)')
def test_training_reduces_loss_and_writes_outputs(tmp_path):
    out = str(tmp_path / 'run')
    proc = subprocess.run(
        [sys.executable, TRAIN, '--config', 'fashion_mnist', 'train.epochs=2', 'train.lr=0.05',
         'train.steps_per_epoch=25', 'data.val_samples=1000', 'output_dir=%s' % out],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = metrics(out)
    assert [r['epoch'] for r in rows] == [1, 2]
    assert rows[1]['train_loss'] < rows[0]['train_loss']
    assert rows[1]['val_top1'] > 20            # chance is 10%; 50 steps only
    assert rows[1]['val_images'] == 1000
    for name in ('config.yaml', 'train.log', 'curves.png', 'last.ckpt', 'best.ckpt'):
        assert os.path.isfile(os.path.join(out, name)), name
    assert not [f for f in os.listdir(out) if '.tmp' in f]
    assert 'img_s' in proc.stderr                # the progress bar reports throughput
    assert 'val top-1' in proc.stdout            # the log goes to stdout and train.log
    # evaluation of the checkpoint reproduces the logged accuracy
    ev = subprocess.run([sys.executable, EVAL, '--config', 'fashion_mnist', '--json',
                         '--checkpoint', os.path.join(out, 'last.ckpt'), 'data.val_samples=1000'],
                        capture_output=True, text=True, timeout=600)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert json.loads(ev.stdout.strip().splitlines()[-1])['top1'] == pytest.approx(
        rows[1]['val_top1'], abs=1e-6)


def _epoch_progress(text, epoch, epochs, steps):
    """Steps of ``epoch`` (1-based) the progress bar in ``text`` has reported done."""
    done = re.findall(r'epoch %d/%d:[^|]*\|[^|]*\| *(\d+)/%d' % (epoch, epochs, steps), text)
    return max(map(int, done), default=0)


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    # Defaults otherwise, Dropout included: training, the per-epoch reseeding and the
    # validation pass (on a copy of the weights, see hcnet.engine._EvalTwin) are all
    # reproducible on CPU, so a resumed run must end bit for bit where an uninterrupted one does.
    ref_dir, cut_dir = str(tmp_path / 'ref'), str(tmp_path / 'cut')
    # One OpenMP thread: oneDNN's reduction order depends on the number of threads, which
    # has to be the same in every run; one keeps it fixed whatever the load.
    env = dict(os.environ, OMP_NUM_THREADS='1')
    epochs = ['train.epochs=3']
    ref = run(SMALL + epochs + ['output_dir=%s' % ref_dir], env=env)
    assert ref.returncode == 0, ref.stderr[-3000:]

    # SIGKILL in the middle of epoch 2 (12 steps per epoch), told by the progress bar.
    err_path = str(tmp_path / 'cut.stderr')
    with open(err_path, 'w') as err:
        proc = subprocess.Popen([sys.executable, TRAIN, '--config', 'hc_m10_i10.yaml'] + SMALL
                                + epochs + ['output_dir=%s' % cut_dir],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and proc.poll() is None:
        done = _epoch_progress(open(err_path).read(), 2, 3, 12)
        if done >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, 'run finished before it could be killed'
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert 2 <= done < 12, done
    assert [r['epoch'] for r in metrics(cut_dir)] == [1]
    assert load_checkpoint(os.path.join(cut_dir, 'last.ckpt'))['meta']['epoch'] == 0

    resumed = run(SMALL + epochs + ['output_dir=%s' % cut_dir, 'resume=auto'], env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed from' in resumed.stdout + resumed.stderr
    a = load_checkpoint(os.path.join(ref_dir, 'last.ckpt'))
    b = load_checkpoint(os.path.join(cut_dir, 'last.ckpt'))
    assert a['meta']['epoch'] == b['meta']['epoch'] == 2
    assert sorted(a['params']) == sorted(b['params'])
    for name in a['params']:                      # BatchNorm running statistics included
        np.testing.assert_array_equal(a['params'][name], b['params'][name], err_msg=name)
    # the per-epoch numbers agree too (validation is deterministic)
    keys = ('epoch', 'train_loss', 'val_top1', 'val_top5', 'lr')
    assert [[r[k] for k in keys] for r in metrics(cut_dir)] == \
        [[r[k] for k in keys] for r in metrics(ref_dir)]


def test_every_n_checkpoints_keep_k_and_corrupt_resume(tmp_path):
    out = str(tmp_path / 'run')
    proc = run(SMALL + ['train.epochs=3', 'train.steps_per_epoch=2', 'output_dir=%s' % out])
    assert proc.returncode == 0, proc.stderr[-3000:]
    kept = sorted(f for f in os.listdir(out) if f.startswith('epoch'))
    assert kept == ['epoch0002.ckpt', 'epoch0003.ckpt']
    bad = tmp_path / 'truncated.ckpt'
    bad.write_bytes(open(os.path.join(out, 'last.ckpt'), 'rb').read()[:1000])
    proc = run(SMALL + ['train.epochs=4', 'output_dir=%s' % out, 'resume=%s' % bad])
    assert proc.returncode == 2
    assert 'corrupt or truncated' in proc.stderr and 'Traceback' not in proc.stderr


def test_gluoncv_baseline_trains_through_the_same_script(tmp_path):
    out = str(tmp_path / 'run')
    proc = run(SMALL + ['model.name=mobilenet0.25', 'train.epochs=1', 'train.steps_per_epoch=2',
                        'output_dir=%s' % out])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert metrics(out)[0]['epoch'] == 1


def test_lr_is_scaled_from_the_reference_batch(tmp_path):
    out = str(tmp_path / 'run')
    proc = run(SMALL + ['train.epochs=1', 'train.steps_per_epoch=1', 'train.reference_batch=64',
                        'output_dir=%s' % out])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'lr 0.025 (train.lr 0.05 x 32 / 64)' in open(os.path.join(out, 'train.log')).read()
