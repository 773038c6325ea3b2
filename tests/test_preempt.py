"""Preemption: SIGTERM / SIGUSR1 stop a run at a step with a checkpoint, and resume=auto
continues there bit for bit (CPU, float32); ``checkpoint.every_steps``; Horovod."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hcnet.train import loop
from hcnet.train.checkpoint import load_checkpoint
from hcnet.train.config import load_config
from hcnet.train.preempt import EXIT_PREEMPTED

from conftest import horovod_worker_pids

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'scripts', 'train_imagenet.py')
HOROVODRUN = shutil.which('horovodrun')

# 12 steps per epoch of 32x32 synthetic images; a log record (steps.jsonl) every step
SMALL = ['data.dataset=synthetic', 'data.synthetic_samples=384', 'data.input_size=32',
         'model.classes=10', 'train.batch_size=32', 'train.reference_batch=32', 'train.lr=0.05',
         'train.warmup_epochs=1', 'train.dtype=float32', 'train.gpus=[]', 'data.num_workers=0',
         'checkpoint.every=1', 'checkpoint.keep=2', 'train.log_interval=1']
# one OpenMP thread: oneDNN's reduction order depends on the thread count (see test_train)
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def cmd(args, config='hc_m10_i10.yaml'):
    return [sys.executable, TRAIN, '--config', config] + SMALL + args


def run(args):
    return subprocess.run(cmd(args), capture_output=True, text=True, timeout=600, env=ENV)


def records(out, name):
    path = os.path.join(out, name)
    return [json.loads(line) for line in open(path)] if os.path.isfile(path) else []


def steps_done(out):
    return len(records(out, 'steps.jsonl'))


def wait_for(proc, cond, what, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError('%s: the run %s first' % (what, 'ended' if proc.poll() is not None
                                                   else 'timed out'))


def assert_same_params(ref_dir, cut_dir):
    a = load_checkpoint(os.path.join(ref_dir, 'last.ckpt'))
    b = load_checkpoint(os.path.join(cut_dir, 'last.ckpt'))
    assert a['meta']['epoch'] == b['meta']['epoch'] and 'step' not in b['meta']
    assert sorted(a['params']) == sorted(b['params'])
    for name in a['params']:                    # BatchNorm running statistics included
        np.testing.assert_array_equal(a['params'][name], b['params'][name], err_msg=name)
    keys = ('epoch', 'train_loss', 'val_top1', 'val_top5', 'lr')
    assert [[r[k] for k in keys] for r in records(cut_dir, 'metrics.jsonl')] == \
        [[r[k] for k in keys] for r in records(ref_dir, 'metrics.jsonl')]
    # each step recorded once, in order
    assert [(r['epoch'], r['step']) for r in records(cut_dir, 'steps.jsonl')] == \
        [(r['epoch'], r['step']) for r in records(ref_dir, 'steps.jsonl')]


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGUSR1])
def test_signal_mid_epoch_then_resume_equals_uninterrupted(tmp_path, sig):
    ref_dir, cut_dir = str(tmp_path / 'ref'), str(tmp_path / 'cut')
    epochs = ['train.epochs=2']
    ref = run(epochs + ['output_dir=%s' % ref_dir])
    assert ref.returncode == 0, ref.stderr[-3000:]

    err_path = str(tmp_path / 'cut.stderr')
    with open(err_path, 'w') as err:
        proc = subprocess.Popen(cmd(epochs + ['output_dir=%s' % cut_dir]),
                                stdout=subprocess.DEVNULL, stderr=err, env=ENV)
    # in the middle of epoch 2 (steps 13..24 of the run)
    wait_for(proc, lambda: steps_done(cut_dir) >= 15, 'signal')
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == EXIT_PREEMPTED
    last = open(err_path).read().strip().splitlines()[-1]
    assert last.startswith('stopped by %s at epoch 2 step ' % signal.Signals(sig).name), last
    assert 'resume=auto' in last
    ckpt = load_checkpoint(os.path.join(cut_dir, 'last.ckpt'))['meta']
    assert ckpt['epoch'] == 0 and 3 <= ckpt['step'] < 12, ckpt
    assert ckpt['partial']['loss_n'] == [32 * ckpt['step']]
    assert [r['epoch'] for r in records(cut_dir, 'metrics.jsonl')] == [1]
    assert not [f for f in os.listdir(cut_dir) if '.tmp' in f]
    with open(os.path.join(cut_dir, 'train.log')) as f:
        assert 'stopped by %s' % signal.Signals(sig).name in f.read()

    resumed = run(epochs + ['output_dir=%s' % cut_dir, 'resume=auto'])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'at epoch 2 step %d' % (ckpt['step'] + 1) in resumed.stdout
    assert_same_params(ref_dir, cut_dir)


def test_every_steps_checkpoint_survives_sigkill(tmp_path):
    ref_dir, cut_dir = str(tmp_path / 'ref'), str(tmp_path / 'cut')
    args = ['train.epochs=1', 'checkpoint.every_steps=5']
    ref = run(args + ['output_dir=%s' % ref_dir])
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert 'checkpoint at epoch 1 step 5/12' in ref.stdout
    assert 'checkpoint at epoch 1 step 10/12' in ref.stdout
    assert 'step 12/12:' not in ref.stdout          # the end of an epoch has its own
    proc = subprocess.Popen(cmd(args + ['output_dir=%s' % cut_dir]), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)
    wait_for(proc, lambda: steps_done(cut_dir) >= 7, 'kill')
    proc.send_signal(signal.SIGKILL)          # nothing to catch: the periodic one is there
    proc.wait()
    meta = load_checkpoint(os.path.join(cut_dir, 'last.ckpt'))['meta']
    assert (meta['epoch'], meta['step']) == (-1, 5), meta
    resumed = run(args + ['output_dir=%s' % cut_dir, 'resume=auto'])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'at epoch 1 step 6' in resumed.stdout
    assert_same_params(ref_dir, cut_dir)


def test_signal_during_validation_stops_after_the_epoch(tmp_path, monkeypatch):
    """A request that arrives while the epoch is validated is served after its checkpoint:
    the run stops between epochs, and a resume starts the next one."""
    out = str(tmp_path / 'run')
    cfg = load_config('hc_m10_i10.yaml', SMALL + ['train.epochs=3', 'train.steps_per_epoch=2',
                                                  'output_dir=%s' % out])
    evaluate = loop.evaluate

    def evaluate_then_signal(*args, **kwargs):
        result = evaluate(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)      # as if sent during validation
        return result

    monkeypatch.setattr(loop, 'evaluate', evaluate_then_signal)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(loop.Preempted, match='stopped by SIGTERM after epoch 1'):
        loop.train(cfg)
    assert signal.getsignal(signal.SIGTERM) is before        # handlers given back
    meta = load_checkpoint(os.path.join(out, 'last.ckpt'))['meta']
    assert meta['epoch'] == 0 and 'step' not in meta
    assert [r['epoch'] for r in records(out, 'metrics.jsonl')] == [1]


def test_a_second_signal_kills_at_once():
    code = ('import os, signal, time\n'
            'from hcnet.train.preempt import StopSignals\n'
            'with StopSignals() as s:\n'
            '    os.kill(os.getpid(), signal.SIGTERM)\n'
            '    assert s.received == "SIGTERM"\n'
            '    print("asked", flush=True)\n'
            '    os.kill(os.getpid(), signal.SIGTERM)\n'
            '    time.sleep(5)\n'
            'print("not killed")\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == 'asked' and proc.returncode == -signal.SIGTERM


def test_resume_refuses_a_position_past_the_epoch(tmp_path):
    out = str(tmp_path / 'run')
    args = ['train.epochs=1', 'checkpoint.every_steps=5', 'train.steps_per_epoch=6',
            'output_dir=%s' % out]
    proc = subprocess.Popen(cmd(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=ENV)
    wait_for(proc, lambda: steps_done(out) >= 5 and os.path.isfile(os.path.join(out, 'last.ckpt')),
             'signal')
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == EXIT_PREEMPTED
    step = load_checkpoint(os.path.join(out, 'last.ckpt'))['meta']['step']
    assert step >= 5
    short = run(['train.epochs=1', 'train.steps_per_epoch=2', 'output_dir=%s' % out,
                 'resume=auto'])
    assert short.returncode == 2
    line = short.stderr.strip().splitlines()[-1]
    assert 'stopped at step %d of epoch 1' % step in line and '2 steps per epoch' in line, line


# --------------------------------------------------------------------------------------
# Horovod: every rank stops at the same step, rank 0 writes

@pytest.mark.skipif(HOROVODRUN is None, reason='Horovod is not installed '
                    '(bash scripts/install.sh distributed)')
def test_sigterm_to_one_rank_stops_all_and_resumes_exactly(tmp_path):
    def hvd(args):
        return [HOROVODRUN, '-np', '2', '-H', 'localhost:2', '--disable-cache', '--gloo'] + \
            cmd(args + ['data.synthetic_samples=384', 'train.batch_size=16',
                        'data.shard=rank'], config='hc_m10_i10_dist.yaml')

    ref_dir, cut_dir = str(tmp_path / 'ref'), str(tmp_path / 'cut')
    epochs = ['train.epochs=2']
    ref = subprocess.run(hvd(epochs + ['output_dir=%s' % ref_dir]), capture_output=True,
                         text=True, timeout=600, env=ENV)
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]

    log_path = str(tmp_path / 'cut.out')
    with open(log_path, 'w') as out:
        proc = subprocess.Popen(hvd(epochs + ['output_dir=%s' % cut_dir]), stdout=out,
                                stderr=subprocess.STDOUT, env=ENV)
    wait_for(proc, lambda: steps_done(cut_dir) >= 15, 'signal')
    victims = horovod_worker_pids(cut_dir, 1)
    assert victims, 'rank-1 worker not found'
    os.kill(victims[0], signal.SIGTERM)         # rank 1 asks; rank 0 writes
    proc.wait(timeout=120)
    assert proc.returncode != 0
    text = open(log_path).read()
    # rank 0 logs it (only rank 0 writes train.log and stdout lines)
    assert 'stopped by a stop signal (on another rank) at epoch 2 step' in text, text[-3000:]
    meta = load_checkpoint(os.path.join(cut_dir, 'last.ckpt'))['meta']
    assert meta['epoch'] == 0 and 3 <= meta['step'] < 12, meta
    assert len(meta['partial']['loss_sum']) == 2          # each rank's running loss
    replicas = load_checkpoint(os.path.join(cut_dir, 'last.ckpt'))['replicas']
    assert sorted(replicas) == [0, 1] and any('running_mean' in k for k in replicas[1])
    assert not [f for f in os.listdir(cut_dir) if '.tmp' in f]

    resumed = subprocess.run(hvd(epochs + ['output_dir=%s' % cut_dir, 'resume=auto']),
                             capture_output=True, text=True, timeout=600, env=ENV)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert_same_params(ref_dir, cut_dir)
