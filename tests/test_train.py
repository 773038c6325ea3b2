"""The trainer end to end on CPU: learning, outputs, kill-and-resume, evaluation."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

from hcnet.train import backend as backend_mod
from hcnet.train import loop
from hcnet.train.checkpoint import load_checkpoint
from hcnet.train.config import ConfigError, load_config
from hcnet.train.data import DataBundle

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
    # validation pass (on a copy of the weights, see hcnet.train.evaluate.EvalTwin) are all
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


# ----------------------------------------------------------------------------- the named steps
# In-process runs of the loop's steps on tiny synthetic configs: 8 images per step at 32x32.

TINY = ['data.dataset=synthetic', 'data.synthetic_samples=64', 'data.val_samples=16',
        'data.input_size=32', 'model.classes=10', 'model.kwargs={dropout: 0.0}',
        'train.batch_size=8', 'train.reference_batch=8', 'train.lr=0.05',
        'train.warmup_epochs=0', 'train.dtype=float32', 'train.gpus=[]', 'data.num_workers=0',
        'checkpoint.every=1', 'checkpoint.keep=2', 'train.steps_per_epoch=4']



def tiny_cfg(out, *extra):
    return load_config('hc_m10_i10.yaml', TINY + list(extra) + ['output_dir=%s' % out])


def _params(net):
    return {k: p.data().asnumpy().copy() for k, p in net._collect_params_with_prefix().items()}


def test_setup_returns_a_run_and_writes_only_the_run_files(tmp_path):
    out = str(tmp_path / 'run')
    run = loop.setup(tiny_cfg(out, 'train.epochs=3'))
    try:
        assert (run.steps, run.epochs, run.start_epoch, run.total_batch) == (4, 3, 0, 8)
        assert run.ctx == [mx.cpu()] and run.eval_twin is not None and run.amp is None
        assert run.lr == pytest.approx(0.05) and run.trainer.learning_rate == pytest.approx(0.05)
        assert sorted(os.listdir(out)) == ['.lock', 'config.yaml', 'metrics.jsonl',
                                           'steps.jsonl', 'train.log']
        assert open(run.path('metrics.jsonl')).read() == ''
    finally:
        run.close()


def test_train_step_updates_the_parameters_and_lowers_the_loss(tmp_path):
    run = loop.setup(tiny_cfg(str(tmp_path / 'run'), 'train.lr_mode=constant',
                              'train.label_smoothing=0'))
    data, label = next(iter(run.data.train.epoch(0)))
    before = _params(run.net)
    losses = [loop.train_step(run, data, label) / data.shape[0] for _ in range(6)]
    after = _params(run.net)
    assert run.trainer.optimizer.num_update == 6
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses   # the same batch, fitted


def test_train_epoch_and_end_epoch_write_metrics_and_checkpoints(tmp_path):
    out = str(tmp_path / 'run')
    run = loop.setup(tiny_cfg(out, 'train.epochs=2'))
    stats = loop.train_epoch(run, 0)
    assert (stats.epoch, stats.seen, stats.loss_n) == (0, 32, 32)
    assert run.trainer.optimizer.num_update == 4
    result = loop.end_epoch(run, 0, stats)
    assert result == run.result and metrics(out) == [result]
    assert set(result) == {'epoch', 'train_loss', 'val_top1', 'val_top5', 'val_images', 'lr',
                           'img_per_s', 'epoch_time_s', 'wall_time_s', 'skipped_images'}
    assert result['epoch'] == 1 and result['val_images'] == 8    # max(batch, 64 // 10)
    assert result['train_loss'] == pytest.approx(stats.loss_sum / stats.loss_n, abs=1e-6)
    for name in ('last.ckpt', 'best.ckpt', 'epoch0001.ckpt'):
        assert load_checkpoint(os.path.join(out, name))['meta']['epoch'] == 0, name
    ckpt = load_checkpoint(os.path.join(out, 'last.ckpt'))
    assert ckpt['trainer'] is not None and ckpt['meta']['best_top1'] == result['val_top1']
    now = _params(run.net)             # validation ran on the twin: the weights are these
    assert sorted(ckpt['params']) == sorted(now)
    for name, value in now.items():
        np.testing.assert_array_equal(ckpt['params'][name], value, err_msg=name)
    assert loop.finish(run) == result and os.path.isfile(os.path.join(out, 'curves.png'))
    run.close()


def test_log_interval_writes_log_lines_steps_jsonl_and_curves(tmp_path, monkeypatch):
    out = str(tmp_path / 'run')
    closed = []
    monkeypatch.setattr(DataBundle, 'close', lambda self: closed.append(self))
    result = loop.train(tiny_cfg(out, 'train.epochs=2', 'train.log_interval=3'))
    assert result['epoch'] == 2 and len(closed) == 1       # the loaders are closed at the end
    # every 3 steps, and the last step of the epoch (4 steps) closes a shorter interval
    lines = re.findall(r'epoch (\d)/2  step (\d)/4  loss [\d.]+  lr [\d.e-]+  \d+ img/s',
                       open(os.path.join(out, 'train.log')).read())
    assert lines == [('1', '3'), ('1', '4'), ('2', '3'), ('2', '4')]
    steps = loop.read_jsonl(os.path.join(out, 'steps.jsonl'))
    assert [(r['epoch'], r['step'], r['global_step']) for r in steps] == \
        [(1, 3, 3), (1, 4, 4), (2, 3, 7), (2, 4, 8)]
    assert set(steps[0]) == {'epoch', 'step', 'steps', 'global_step', 'loss', 'lr',
                             'img_per_s', 'time'}
    # an interval's loss is its mean: weighted by their steps, the epoch's training loss
    for epoch, row in zip((1, 2), metrics(out)):
        means = [r['loss'] for r in steps if r['epoch'] == epoch]
        assert (3 * means[0] + means[1]) / 4 == pytest.approx(row['train_loss'], abs=1e-5)
    assert steps[-1]['lr'] == pytest.approx(metrics(out)[-1]['lr'])
    assert os.path.getsize(os.path.join(out, 'curves.png')) > 1000


def test_curves_draw_the_per_interval_loss_and_lr(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib.axes import Axes
    drawn = []
    original = Axes.plot

    def plot(self, *args, **kwargs):
        drawn.append((self.get_title(), list(args[0]), list(args[1]), kwargs.get('label')))
        return original(self, *args, **kwargs)
    monkeypatch.setattr(Axes, 'plot', plot)
    m, s = tmp_path / 'metrics.jsonl', tmp_path / 'steps.jsonl'
    m.write_text(''.join(json.dumps({'epoch': e, 'train_loss': 2.0 / e, 'val_top1': 10.0 * e,
                                     'val_top5': 20.0 * e, 'lr': 0.1 / e}) + '\n'
                         for e in (1, 2)))
    s.write_text(''.join(json.dumps({'epoch': g // 4 + 1, 'step': g % 4 + 1, 'steps': 4,
                                     'global_step': g + 1, 'loss': 3.0 - 0.1 * g,
                                     'lr': 0.2 - 0.01 * g}) + '\n' for g in range(8))
                 + '{"epoch": 3, "st')           # the tail a killed run leaves is ignored
    png = tmp_path / 'curves.png'
    loop.plot_curves(str(m), str(png), str(s))
    assert png.stat().st_size > 1000 and not [f for f in os.listdir(tmp_path) if '.tmp' in f]
    loss, lr = [d for d in drawn if d[3] == 'per log interval']   # axes 0 and 2
    assert loss[1] == pytest.approx([0.25 * (g + 1) for g in range(8)])   # fractional epochs
    assert loss[2] == pytest.approx([3.0 - 0.1 * g for g in range(8)])
    assert lr[2] == pytest.approx([0.2 - 0.01 * g for g in range(8)])


def test_resume_rewrites_steps_and_metrics_without_duplicates(tmp_path):
    out = str(tmp_path / 'run')
    loop.train(tiny_cfg(out, 'train.epochs=1', 'train.log_interval=2'))
    # a run killed in epoch 2 after one log interval (and an epoch record whose checkpoint
    # was never written): the resumed run redoes epoch 2 from last.ckpt
    with open(os.path.join(out, 'steps.jsonl'), 'a') as f:
        f.write(json.dumps({'epoch': 2, 'step': 2, 'steps': 4, 'global_step': 6, 'loss': 9.0,
                            'lr': 0.0, 'img_per_s': 1.0, 'time': 0.0}) + '\n{"epoch": 2, "st')
    with open(os.path.join(out, 'metrics.jsonl'), 'a') as f:
        f.write(json.dumps({'epoch': 2, 'train_loss': 9.0}) + '\n')
    loop.train(tiny_cfg(out, 'train.epochs=2', 'train.log_interval=2', 'resume=auto'))
    steps = loop.read_jsonl(os.path.join(out, 'steps.jsonl'))
    assert [r['global_step'] for r in steps] == [2, 4, 6, 8]
    assert 9.0 not in [r['loss'] for r in steps]
    assert [r['epoch'] for r in metrics(out)] == [1, 2] and metrics(out)[1]['train_loss'] != 9.0
    assert 'resumed from' in open(os.path.join(out, 'train.log')).read()


def test_labels_outside_model_classes_are_an_error():
    cfg = load_config(None, ['data.dataset=synthetic', 'model.classes=3'])
    loop.check_labels(cfg, mx.nd.array([0, 1, 2]))
    with pytest.raises(ConfigError, match='model.classes = 3 but the synthetic training data '
                                          'has label 7'):
        loop.check_labels(cfg, mx.nd.array([0, 7, 1]))


# ----------------------------------------------------------------------------- the backends

class _FakeHorovod:
    class Compression:
        none, fp16 = 'none', 'fp16'

    class DistributedTrainer:
        def __init__(self, params, optimizer, optimizer_params, compression='none'):
            self.args = (params, optimizer, optimizer_params)
            self.compression = compression


def test_horovod_trainer_follows_the_runs_contexts_not_the_host(monkeypatch):
    hb = object.__new__(backend_mod.HorovodBackend)       # no hvd.init(): only the choice
    hb.hvd = _FakeHorovod
    monkeypatch.setattr(mx.context, 'num_gpus', lambda: 8)   # a GPU host
    cpu = hb.make_trainer({}, 'sgd', {}, [mx.cpu()])
    gpu = hb.make_trainer({}, 'sgd', {}, [mx.gpu(0)])
    assert type(cpu).__name__ == 'PlainLayoutTrainer'
    assert isinstance(cpu, _FakeHorovod.DistributedTrainer)
    assert type(gpu) is _FakeHorovod.DistributedTrainer
    assert cpu.compression == gpu.compression == 'none'
    assert hb.make_trainer({}, 'sgd', {}, [mx.gpu(0)], fp16_allreduce=True).compression == 'fp16'


@pytest.mark.parametrize('env,expected', [({}, False), ({'HOROVOD_SIZE': '1'}, True),
                                          ({'HOROVOD_SIZE': '4'}, True),
                                          ({'OMPI_COMM_WORLD_SIZE': '2'}, True),
                                          ({'PMI_SIZE': '1'}, True)])
def test_under_horovod_is_any_launcher_variable(monkeypatch, env, expected):
    for var in ('HOROVOD_SIZE', 'OMPI_COMM_WORLD_SIZE', 'PMI_SIZE'):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert backend_mod.under_horovod() is expected


def test_local_backend_names_gpus_this_machine_lacks(monkeypatch):
    monkeypatch.setattr(mx.context, 'num_gpus', lambda: 1)
    cfg = load_config(None, ['train.gpus=[0, 3]'])
    with pytest.raises(ConfigError, match=r'train.gpus = \[0, 3\]: this machine has 1 GPU'):
        backend_mod.LocalBackend().contexts(cfg)


# ----------------------------------------------------------------------------- several devices

def test_two_cpu_devices_equal_one_device_with_twice_the_batch(tmp_path):
    """The single-process multi-GPU path (split_and_load, the kvstore's aggregation over
    devices, per-device BatchNorm statistics averaged at the epoch's end) on two CPU
    contexts: 2 devices x batch b give the parameters of 1 device x 2b; a run whose
    gradients were summed over the devices instead of averaged (= twice the lr) does not.

    Tolerance: rtol 1e-5, plus 1e-5 of each tensor's largest magnitude for its near-zero
    elements (float32 sums over 16 or 32 images differ in the last bits, and backprop
    through the network's depth brings a single step's gradients 3e-6 of their scale apart).
    """
    common = ['data.dataset=synthetic', 'data.synthetic_samples=192', 'data.input_size=32',
              'model.classes=10', 'train.reference_batch=32', 'train.warmup_epochs=0',
              'train.dtype=float32', 'train.gpus=[]', 'data.num_workers=0', 'train.epochs=1',
              'train.steps_per_epoch=3', 'train.mixup_alpha=0', 'train.seed=3',
              'data.val_samples=32',
              'model.kwargs={dropout: 0.0, norm_kwargs: {use_global_stats: true}}']
    runs = {}
    for key, args in (('two', ['train.cpu_devices=2', 'train.batch_size=16', 'train.lr=0.002']),
                      ('one', ['train.batch_size=32', 'train.lr=0.002']),
                      ('summed', ['train.batch_size=32', 'train.lr=0.004'])):
        out = str(tmp_path / key)
        run = loop.setup(load_config('hc_m10_i10.yaml', common + args + ['output_dir=%s' % out]))
        try:
            assert len(run.ctx) == (2 if key == 'two' else 1)
            for epoch in range(run.epochs):
                loop.end_epoch(run, epoch, loop.train_epoch(run, epoch))
        finally:
            run.close()
        runs[key] = load_checkpoint(os.path.join(out, 'last.ckpt'))['params']
    a, b, c = runs['two'], runs['one'], runs['summed']
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5,
                                   atol=1e-5 * float(np.abs(b[name]).max()), err_msg=name)
    assert any(not np.allclose(c[n], b[n], rtol=1e-5, atol=1e-5 * float(np.abs(b[n]).max()))
               for n in a)


def test_running_stats_of_the_devices_are_averaged(tmp_path):
    cfg = load_config('hc_m10_i10.yaml', ['data.dataset=synthetic', 'data.input_size=32',
                                          'model.classes=10', 'train.cpu_devices=2',
                                          'train.gpus=[]', 'train.dtype=float32'])
    from hcnet.train.model import build_model
    net = build_model(cfg, [mx.cpu(0), mx.cpu(1)])
    stats = [p for p in net.collect_params().values() if p.grad_req == 'null']
    assert stats
    for i, p in enumerate(stats):
        p.data(mx.cpu(0))[:] = 1.0 + i
        p.data(mx.cpu(1))[:] = 3.0 + i
    backend_mod.LocalBackend().average_running_stats(net)
    for i, p in enumerate(stats):
        for c in (mx.cpu(0), mx.cpu(1)):
            np.testing.assert_array_equal(p.data(c).asnumpy(), 2.0 + i)
