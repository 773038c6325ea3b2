"""The GPU code paths (issue 20), exercised on CPU where MXNet allows.

* several ``mx.cpu(i)`` contexts run the single-process multi-device code: the batch is
  split first, then mixed up, cast and given its targets on each device (finding 9);
* bfloat16 AMP runs on CPU: the trainer updates outside the kvstore and skips a step whose
  gradients overflowed on the second device only (finding 4); LB-SGD's LARS ratios come
  from the gradients without AMP's loss scale (finding 6). AMP patches MXNet's operators
  for the whole process, so these run in a subprocess each;
* float16 checkpoints / .params files load into float32 networks in export, publish, the
  store's loader and eval (finding 5);
* Horovod's ``gradient_predivide_factor`` (finding 7), the optimizer's update counts of
  another device on resume.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

import hcnet
from hcnet.commands import export as export_model
from hcnet.commands import publish as publish_model
from hcnet.store import clear_index_cache
from hcnet.store.publish import publish_params
from hcnet.train import backend as backend_mod
from hcnet.train import loop
from hcnet.train import optim  # noqa: F401  (registers lbsgd)
from hcnet.train.checkpoint import load_checkpoint, restore, save_checkpoint
from hcnet.train.config import ConfigError, load_config
from hcnet.train.optim import LBSGD

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'scripts', 'train_imagenet.py')
HOROVODRUN = shutil.which('horovodrun')

TINY = ['data.dataset=synthetic', 'data.synthetic_samples=64', 'data.val_samples=16',
        'data.input_size=32', 'model.classes=10', 'model.kwargs={dropout: 0.0}',
        'train.batch_size=8', 'train.reference_batch=8', 'train.lr=0.05',
        'train.warmup_epochs=0', 'train.dtype=float32', 'train.gpus=[]', 'data.num_workers=0',
        'checkpoint.every=1', 'checkpoint.keep=2', 'train.steps_per_epoch=4']


def _cfg(out, *extra):
    return load_config('hc_m10_i10.yaml', TINY + list(extra) + ['output_dir=%s' % out])


def _trainable(net):
    return [(k, p) for k, p in sorted(net._collect_params_with_prefix().items())
            if p.grad_req != 'null']


def _values(net):
    """{name: [value on each device]} of every parameter."""
    return {k: [p.data(c).asnumpy().copy() for c in p.list_ctx()]
            for k, p in sorted(net._collect_params_with_prefix().items())}


# --------------------------------------------------------------------------------------
# finding 9: split first, then mix, cast and build the targets on each device

def _old_train_step(run, data, label, mixup=None):
    """train_step as it was before issue 20 (mix and cast the whole batch on the CPU,
    then split): the reference for bit-identity."""
    cfg = run.cfg
    lam, perm = mixup if mixup is not None else (None, None)
    if mixup is not None:
        data = lam * data + (1 - lam) * data.take(perm)
    target = loop._targets(label, cfg['model.classes'], cfg['train.label_smoothing'], lam, perm)
    xs = gluon.utils.split_and_load(data.astype(run.in_dtype, copy=False), run.ctx)
    ts = gluon.utils.split_and_load(target, run.ctx)
    with mx.autograd.record():
        losses = [run.loss_fn(loop._logits(run.net(x)), t) for x, t in zip(xs, ts)]
        mx.autograd.backward(losses)
    run.trainer.step(data.shape[0])
    return sum(l.sum().asscalar() for l in losses)


@pytest.mark.parametrize('devices,mixup', [(1, True), (1, False), (2, False)])
def test_train_step_is_bit_identical_to_mixing_on_the_cpu_first(tmp_path, devices, mixup):
    """One device (with or without Mixup), or several without Mixup: the same floats as
    the former order, parameters and loss bit for bit."""
    extra = ['train.cpu_devices=%d' % devices, 'train.batch_size=%d' % (8 // devices)]
    runs = [loop.setup(_cfg(str(tmp_path / name), *extra)) for name in ('new', 'old')]
    try:
        batches = list(runs[0].data.train.epoch(0))[:3]
        rng = np.random.RandomState(7)
        mixes = [loop._draw_mixup(rng, 0.4, 8) if mixup else None for _ in batches]
        losses = {'new': [], 'old': []}
        for (data, label), mix in zip(batches, mixes):
            losses['new'].append(loop.train_step(runs[0], data, label, mix))
            losses['old'].append(_old_train_step(runs[1], data, label, mix))
        assert losses['new'] == losses['old']
        assert all(np.isfinite(losses['new']))
        a, b = _values(runs[0].net), _values(runs[1].net)
        for name in a:
            for x, y in zip(a[name], b[name]):
                np.testing.assert_array_equal(x, y, err_msg=name)
    finally:
        for run in runs:
            run.close()


def test_device_perms_are_permutations_of_each_share():
    perm = mx.nd.array(np.random.RandomState(3).permutation(12))
    assert loop._device_perms(perm, [12])[0] is perm          # one device: the batch's own
    parts = loop._device_perms(perm, [4, 4, 4])
    for p in parts:
        assert sorted(p.tolist()) == [0, 1, 2, 3]
    # the relative order of the batch permutation within each share
    values = perm.asnumpy()
    for d, p in enumerate(parts):
        share = values[4 * d:4 * d + 4]
        assert [int(i) for i in p] == list(np.argsort(np.argsort(share)))


def test_two_devices_split_first_then_mix_cast_and_target_on_each_device(tmp_path, monkeypatch):
    run = loop.setup(_cfg(str(tmp_path / 'run'), 'train.cpu_devices=2', 'train.batch_size=4',
                          'train.label_smoothing=0.1'))
    split_inputs, net_inputs = [], []
    real_split = gluon.utils.split_and_load

    def spy_split(data, ctx_list, *args, **kwargs):
        split_inputs.append((data.context, data.dtype, data.asnumpy().copy()))
        return real_split(data, ctx_list, *args, **kwargs)

    monkeypatch.setattr(gluon.utils, 'split_and_load', spy_split)
    hook = run.net.register_forward_pre_hook(
        lambda block, inputs: net_inputs.append((inputs[0].context, inputs[0].dtype,
                                                 inputs[0].asnumpy().copy())))
    targets = []
    real_loss = run.loss_fn

    def spy_loss(pred, target):
        targets.append((target.context, target.asnumpy().copy()))
        return real_loss(pred, target)

    run.loss_fn = spy_loss
    try:
        data, label = next(iter(run.data.train.epoch(0)))
        lam, perm = loop._draw_mixup(np.random.RandomState(5), 0.4, 8)
        loss = loop.train_step(run, data, label, (lam, perm))
    finally:
        hook.detach()
        run.close()
    assert np.isfinite(loss)
    raw = data.asnumpy()
    # what leaves the CPU: the raw float32 batch and labels, not mixed, not cast
    assert [(c, d) for c, d, _ in split_inputs] == [(mx.cpu(0), np.float32)] * 2
    np.testing.assert_array_equal(split_inputs[0][2], raw)
    np.testing.assert_array_equal(split_inputs[1][2], label.asnumpy())
    # each device mixes its own share with the share's permutation, in the network's dtype
    perms = loop._device_perms(perm, [4, 4])
    onehot = np.eye(10, dtype=np.float32)[label.asnumpy().astype(int)] * 0.9 + 0.01
    assert [c for c, _, _ in net_inputs] == [mx.cpu(0), mx.cpu(1)]
    for d, (ctx, dtype, x) in enumerate(net_inputs):
        share, p = raw[4 * d:4 * d + 4], np.asarray(perms[d], dtype=int)
        assert dtype == np.dtype(run.in_dtype)
        np.testing.assert_allclose(x, lam * share + (1 - lam) * share[p], rtol=1e-6, atol=1e-6)
        t_ctx, t = targets[d]
        assert t_ctx == ctx
        y = onehot[4 * d:4 * d + 4]
        np.testing.assert_allclose(t, lam * y + (1 - lam) * y[p], rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------------------
# finding 6: LARS from gradients without the loss scale

SHAPES = [(8, 4, 3, 3), (8,), (16, 8), (5,)]


def _lars_run(scale, lars_batch, batch=64, steps=3):
    """LB-SGD + LARS on gradients multiplied by ``scale`` (as AMP's scale_loss leaves them),
    the trainer's rescale_grad removing it again (1 / (batch * scale))."""
    rs = np.random.RandomState(0)
    weights = [mx.nd.array(rs.randn(*s)) for s in SHAPES]
    grads = [[mx.nd.array(rs.randn(*s) * 10 ** rs.uniform(-2, 1)) for s in SHAPES]
             for _ in range(steps)]
    opt = LBSGD(lars=True, momentum=0.9, learning_rate=0.1, wd=3e-5,
                rescale_grad=1.0 / (batch * scale), lars_batch=lars_batch)
    updater = mx.optimizer.get_updater(opt)
    for gs in grads:
        updater(list(range(len(weights))), [g * scale for g in gs], weights)
    return [w.asnumpy() for w in weights], opt


def test_lars_ratios_ignore_the_loss_scale():
    plain, _ = _lars_run(1.0, 64)
    # MXNet's rule (the arriving gradient) on unscaled gradients: the same run
    mxnet_rule, _ = _lars_run(1.0, None)
    for a, b in zip(plain, mxnet_rule):
        np.testing.assert_array_equal(a, b)
    # AMP's initial loss scale 2^16: bit for bit the unscaled run (powers of two)
    scaled, opt = _lars_run(2.0 ** 16, 64)
    assert opt.lars_grad_scale() == 2.0 ** -16
    for a, b in zip(scaled, plain):
        np.testing.assert_array_equal(a, b)
    # a factor that is not a power of two (Horovod's f / ranks): equal within rounding
    thirds, _ = _lars_run(3.0, 64)
    for a, b in zip(thirds, plain):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # MXNet's rule on the scaled gradients: another run, ratios at the clip's floor
    wrong, opt = _lars_run(2.0 ** 16, None)
    assert any(not np.allclose(a, b, rtol=1e-3) for a, b in zip(wrong, plain))
    rs = np.random.RandomState(1)
    ws = [mx.nd.array(rs.randn(*s)) for s in SHAPES]
    gs = [mx.nd.array(rs.randn(*s)) for s in SHAPES]
    wds = mx.nd.array([3e-5] * len(SHAPES))
    floor = opt._ratios(ws, [g * 2 ** 16 for g in gs], wds).asnumpy()
    np.testing.assert_allclose(floor, 0.01)
    fixed = opt._ratios(ws, [g * 2 ** 16 for g in gs], wds, 2.0 ** -16).asnumpy()
    np.testing.assert_allclose(fixed, opt._ratios(ws, gs, wds).asnumpy(), rtol=1e-6)
    assert (fixed > 0.01).all()


def test_lars_batch_must_be_positive():
    with pytest.raises(ValueError):
        LBSGD(lars=True, lars_batch=0)


def test_build_trainer_gives_lars_the_total_batch(tmp_path):
    run = loop.setup(_cfg(str(tmp_path / 'run'), 'train.optimizer=lbsgd', 'train.lars=true',
                          'train.cpu_devices=2', 'train.batch_size=4'))
    try:
        opt = run.trainer._optimizer
        assert opt.lars and opt.lars_batch == run.total_batch == 8
        data, label = next(iter(run.data.train.epoch(0)))
        loop.train_step(run, data, label)
        assert opt.lars_grad_scale() == 1.0             # float32, one process: MXNet's rule
    finally:
        run.close()


_AMP_SCRIPT = r'''
import json, sys
import numpy as np
import mxnet as mx
from hcnet.train import loop
from hcnet.train.config import load_config
out, what = sys.argv[1], sys.argv[2]
cfg = load_config('hc_m10_i10.yaml', json.loads(sys.argv[3]) + ['output_dir=' + out])
run = loop.setup(cfg)
result = {'amp': run.amp is not None, 'devices': len(run.ctx)}
trainer = run.trainer
scaler = trainer._amp_loss_scaler
batches = iter(run.data.train.epoch(0))
params = [p for _, p in sorted(run.net._collect_params_with_prefix().items())
          if p.grad_req != 'null']

def values():
    return [p.data(c).asnumpy().copy() for p in params for c in p.list_ctx()]

if what == 'overflow':
    data, label = next(batches)
    loop.train_step(run, data, label)                  # initialises the kvstore and updaters
    result['update_on_kvstore'] = trainer._update_on_kvstore
    before, updates = values(), trainer._optimizer.num_update
    real_step = trainer.step
    def poisoned(batch_size, ignore_stale_grad=False):
        # the second device's gradient of one parameter overflows, the first's does not
        params[0].list_grad()[1][:] = np.inf
        return real_step(batch_size, ignore_stale_grad)
    trainer.step = poisoned
    data, label = next(batches)
    result['poisoned_loss'] = float(loop.train_step(run, data, label))
    after = values()
    result['unchanged'] = all(np.array_equal(a, b) for a, b in zip(before, after))
    result['skipped'] = trainer._optimizer.num_update == updates
    # MXNet's LossScaler: the scale checked at this step, and the one of the next step
    result['scale'], result['next_scale'] = scaler.loss_scale, scaler._next_loss_scale
    trainer.step = real_step
    data, label = next(batches)
    loop.train_step(run, data, label)
    later = values()
    result['later_changed'] = any(not np.array_equal(a, b) for a, b in zip(after, later))
    result['later_finite'] = all(np.isfinite(v).all() for v in later)
    result['later_scale'] = scaler.loss_scale
    result['later_updates'] = trainer._optimizer.num_update - updates
elif what == 'lars':
    opt = trainer._optimizer
    seen = []
    real_ratios = opt._ratios
    def spy(weights, grads, wds, grad_scale=1.0):
        ratios = real_ratios(weights, grads, wds, grad_scale)
        s = opt.rescale_grad * opt.lars_batch
        unscaled = real_ratios(weights, [g * s for g in grads], wds)   # from g * rescale * batch
        as_arriving = real_ratios(weights, grads, wds)                  # MXNet's rule
        seen.append({'ratios': ratios.asnumpy().tolist(), 'unscaled': unscaled.asnumpy().tolist(),
                     'as_arriving': as_arriving.asnumpy().tolist(), 'grad_scale': grad_scale,
                     's': s, 'loss_scale': scaler.loss_scale})
        return ratios
    opt._ratios = spy
    for _ in range(2):
        data, label = next(batches)
        loop.train_step(run, data, label)
    result['seen'] = seen
run.close()
print('RESULT ' + json.dumps(result))
'''


def _amp(tmp_path, what, args):
    proc = subprocess.run([sys.executable, '-c', _AMP_SCRIPT, str(tmp_path / what), what,
                           json.dumps(TINY + args)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')][-1]
    return json.loads(line[len('RESULT '):])


def test_amp_on_two_devices_skips_a_step_that_overflowed_on_the_second(tmp_path):
    """bfloat16 AMP (the CPU's; float16 AMP needs a GPU) on two CPU contexts: the update
    runs in the trainer (update_on_kvstore False), after the gradients of both devices were
    summed, so an overflow on the second device alone skips the step on both and lowers
    the loss scale; the next step trains with the lowered scale."""
    r = _amp(tmp_path, 'overflow', ['train.dtype=bfloat16', 'train.cpu_devices=2',
                                    'train.batch_size=4'])
    assert r['amp'] and r['devices'] == 2
    assert r['update_on_kvstore'] is False
    assert np.isfinite(r['poisoned_loss'])         # the loss was fine, a gradient was not
    assert r['unchanged'] and r['skipped'], 'an overflowing step was applied'
    assert r['next_scale'] == r['scale'] / 2
    assert r['later_changed'] and r['later_finite'] and r['later_updates'] == 1
    assert r['later_scale'] == r['scale'] / 2


def test_lars_under_amp_uses_the_unscaled_gradients(tmp_path):
    r = _amp(tmp_path, 'lars', ['train.dtype=bfloat16', 'train.optimizer=lbsgd',
                                'train.lars=true', 'train.wd=3e-5'])
    assert r['amp'] and r['seen']
    for step in r['seen']:
        # rescale_grad * images = 1 / loss scale: the factor AMP's gradients carry
        assert step['s'] * step['loss_scale'] == pytest.approx(1.0, rel=1e-12)
        assert step['grad_scale'] == step['s']
        np.testing.assert_allclose(step['ratios'], step['unscaled'], rtol=1e-5)
        # MXNet's rule would have clipped (almost) every layer to the floor
        fixed, wrong = np.array(step['ratios']), np.array(step['as_arriving'])
        assert (wrong <= 0.01 + 1e-9).mean() > (fixed <= 0.01 + 1e-9).mean()


# --------------------------------------------------------------------------------------
# finding 7: Horovod's gradient_predivide_factor

class _FakeHorovod:
    class Compression:
        none, fp16 = 'none', 'fp16'

    class DistributedTrainer:
        def __init__(self, params, optimizer, optimizer_params, compression='none', **kwargs):
            self.compression, self.kwargs = compression, kwargs


def test_gradient_predivide_factor_reaches_horovods_trainer(monkeypatch):
    hb = object.__new__(backend_mod.HorovodBackend)       # no hvd.init()
    hb.hvd = _FakeHorovod
    for ctx in ([mx.cpu()], [mx.gpu(0)]):
        assert hb.make_trainer({}, 'sgd', {}, ctx).kwargs == {}      # Horovod's default
        t = hb.make_trainer({}, 'sgd', {}, ctx, gradient_predivide_factor=8)
        assert t.kwargs == {'gradient_predivide_factor': 8.0}
    cfg = load_config('hc_m10_i10.yaml', [])
    assert cfg['train.gradient_predivide_factor'] == 1.0
    for bad in ('0', '-2'):
        with pytest.raises(ConfigError, match='train.gradient_predivide_factor'):
            load_config('hc_m10_i10.yaml', ['train.gradient_predivide_factor=%s' % bad])


@pytest.mark.skipif(HOROVODRUN is None, reason='Horovod is not installed '
                    '(bash scripts/install.sh distributed)')
def test_gradient_predivide_factor_still_averages_under_horovodrun(tmp_path):
    """2 ranks with gradient_predivide_factor 3 train the parameters of factor 1 within
    float rounding (LB-SGD with LARS, whose ratios must not see the factor either), and
    the factor is applied (the floats are not all the same)."""
    common = ['data.dataset=synthetic', 'data.input_size=32', 'model.classes=10',
              'train.reference_batch=32', 'train.dtype=float32', 'train.gpus=[]',
              'data.num_workers=0', 'checkpoint.every=1', 'data.synthetic_samples=192',
              'data.shard=rank', 'train.epochs=1', 'train.steps_per_epoch=3',
              'train.mixup_alpha=0', 'train.seed=3', 'train.warmup_epochs=0', 'train.lr=0.005',
              'train.batch_size=16', 'train.optimizer=lbsgd', 'train.lars=true',
              'model.kwargs={dropout: 0.0, norm_kwargs: {use_global_stats: true}}']
    params = {}
    for factor in ('1', '3'):
        out = str(tmp_path / factor)
        cmd = [HOROVODRUN, '-np', '2', '-H', 'localhost:2', '--disable-cache', '--gloo',
               sys.executable, TRAIN, '--config', 'hc_m10_i10_dist.yaml'] + common + [
               'train.gradient_predivide_factor=%s' % factor, 'output_dir=%s' % out]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        params[factor] = load_checkpoint(os.path.join(out, 'last.ckpt'))['params']
    a, b = params['1'], params['3']
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert any(not np.array_equal(a[n], b[n]) for n in a)


# --------------------------------------------------------------------------------------
# the optimizer's update counts on another device after a resume

def test_resume_on_another_device_keeps_the_schedule_moving(tmp_path):
    """MXNet counts updates per device id and its num_update is their maximum: Horovod rank
    k resumes on gpu(k) a checkpoint rank 0 wrote from gpu(0). Simulated with cpu(0) and
    cpu(1): the lr schedule continues instead of standing still."""
    def build(ctx):
        net = gluon.nn.Dense(3, in_units=4)
        net.initialize(mx.init.Constant(0.1), ctx=ctx)
        sched = mx.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=1.0)
        trainer = gluon.Trainer(net.collect_params(), 'sgd',
                                {'learning_rate': 1.0, 'lr_scheduler': sched, 'momentum': 0.9})
        return net, trainer

    def step(net, trainer, ctx):
        x = mx.nd.ones((2, 4), ctx=ctx)
        with mx.autograd.record():
            loss = net(x).sum()
        loss.backward()
        trainer.step(2)

    net, trainer = build(mx.cpu(0))
    for _ in range(3):
        step(net, trainer, mx.cpu(0))
    path = str(tmp_path / 'c.ckpt')
    save_checkpoint(path, net, trainer, {})
    for ctx in (mx.cpu(0), mx.cpu(1)):
        net2, trainer2 = build(ctx)
        restore(load_checkpoint(path), net2, trainer2)
        assert trainer2._optimizer.num_update == 3
        step(net2, trainer2, ctx)
        step(net2, trainer2, ctx)
        assert trainer2._optimizer.num_update == 5, ctx
        assert trainer2.learning_rate == pytest.approx(0.5 ** 4), ctx


# --------------------------------------------------------------------------------------
# finding 5: float16 weights into float32 networks

NAME = 'hc_m10_i5'


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mxnet_home'))
    monkeypatch.delenv('HCNET_REPO_URL', raising=False)
    clear_index_cache()
    yield
    clear_index_cache()


def _x(batch=2, size=32, seed=1):
    return mx.nd.array(np.random.RandomState(seed).randn(batch, 3, size, size).astype('float32'))


def _half_checkpoint(path):
    """A checkpoint of a ``net.cast('float16')`` run and the float32 network with the same
    (widened) values."""
    net = hcnet.get_model(NAME, classes=10)
    net(_x())
    rng = np.random.RandomState(3)
    for name, p in sorted(net.collect_params().items()):
        v = p.data().asnumpy()
        if name.endswith(('running_var', 'gamma')):
            v = rng.uniform(0.8, 1.2, v.shape)
        elif name.endswith(('running_mean', 'beta', 'bias')):
            v = rng.uniform(-0.1, 0.1, v.shape)
        else:
            v = v * rng.uniform(0.8, 1.2, v.shape)
        p.set_data(mx.nd.array(v))
    net.cast('float16')
    config = {'model': {'name': NAME, 'classes': 10, 'kwargs': {}},
              'data': {'dataset': 'synthetic', 'input_size': 32}}
    save_checkpoint(path, net, None, {'epoch': 1, 'model': NAME, 'classes': 10,
                                      'top1': 50.0, 'config': config})
    # (BatchNorm keeps float32 parameters under cast('float16'))
    assert np.dtype('float16') in {v.dtype for v in load_checkpoint(path)['params'].values()}
    net.cast('float32')
    return net


def test_float16_checkpoint_exports(tmp_path, isolated):
    ckpt = str(tmp_path / 'half.ckpt')
    ref = _half_checkpoint(ckpt)
    out = str(tmp_path / 'out')
    assert export_model.main(['--checkpoint', ckpt, '--out', out, '--no-onnx']) == 0
    prefix = os.path.join(out, NAME)
    assert {v.dtype for v in mx.nd.load(prefix + '-0000.params').values()} == {np.float32}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        sym = gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'],
                                        prefix + '-0000.params')
    np.testing.assert_allclose(sym(_x()).asnumpy(), ref(_x()).asnumpy(), rtol=1e-5, atol=1e-5)


def test_float16_checkpoint_publishes_float32_weights_that_load(tmp_path, isolated, monkeypatch):
    ckpt = str(tmp_path / 'half.ckpt')
    ref = _half_checkpoint(ckpt)
    store = str(tmp_path / 'store')
    entry = publish_model.publish(ckpt, store)
    loaded = mx.nd.load(os.path.join(store, entry['file']))
    assert {v.dtype for v in loaded.values()} == {np.float32}
    monkeypatch.setenv('HCNET_REPO_URL', 'file://' + store)
    net = hcnet.get_model(NAME, pretrained=True, classes=10, root=str(tmp_path / 'cache'))
    np.testing.assert_array_equal(net(_x()).asnumpy(), ref(_x()).asnumpy())


def test_store_loader_casts_a_float16_params_file(tmp_path, isolated, monkeypatch):
    """A store whose file holds float16 arrays (published by another writer): the loader
    casts them to the network's float32."""
    ckpt = str(tmp_path / 'half.ckpt')
    ref = _half_checkpoint(ckpt)
    store = str(tmp_path / 'store16')
    entry = publish_params(load_checkpoint(ckpt)['params'], store, NAME,
                           {'model': NAME, 'dataset': 'synthetic', 'classes': 10,
                            'input_size': 32, 'top1': None, 'config': {}, 'kwargs': None})
    assert np.float16 in {v.dtype for v in mx.nd.load(os.path.join(store, entry['file'])).values()}
    monkeypatch.setenv('HCNET_REPO_URL', 'file://' + store)
    net = hcnet.get_model(NAME, pretrained=True, classes=10, root=str(tmp_path / 'cache'))
    assert {p.data().dtype for p in net.collect_params().values()} == {np.float32}
    np.testing.assert_array_equal(net(_x()).asnumpy(), ref(_x()).asnumpy())


def test_restore_casts_on_the_host(tmp_path, monkeypatch):
    """What reaches Parameter.set_data already has the parameter's dtype: MXNet cannot
    change the dtype in a copy between the CPU and a GPU (a CPU-to-CPU copy can, which is
    why a CPU-only test of the load alone would pass either way)."""
    ckpt = load_checkpoint(_half_save(tmp_path))
    net = hcnet.get_model(NAME, classes=10)
    net(_x())
    seen = []
    real = gluon.Parameter.set_data

    def spy(self, data):
        seen.append((self.name, np.dtype(self.dtype), data.dtype, data.context))
        return real(self, data)

    monkeypatch.setattr(gluon.Parameter, 'set_data', spy)
    restore(ckpt, net)
    assert seen and all(dtype == data_dtype == np.float32 and ctx == mx.cpu()
                        for _, dtype, data_dtype, ctx in seen), seen[:3]
    for p in net.collect_params().values():
        assert p.data().dtype == np.float32


def _half_save(tmp_path):
    path = str(tmp_path / 'h.ckpt')
    if not os.path.exists(path):
        _half_checkpoint(path)
    return path


def test_eval_of_a_float16_checkpoint_equals_its_float32_copy(tmp_path):
    from hcnet.train.model import build_model
    cfg = _cfg(str(tmp_path / 'x'))
    net = build_model(cfg, [mx.cpu()])
    meta = {'epoch': 0, 'model': 'hc_m10_i10', 'classes': 10}
    net.cast('float16')
    half = str(tmp_path / 'half.ckpt')
    save_checkpoint(half, net, None, meta)
    net.cast('float32')
    full = str(tmp_path / 'full.ckpt')
    save_checkpoint(full, net, None, meta)
    results = []
    for path in (half, full):
        proc = subprocess.run([sys.executable, '-m', 'hcnet', 'eval', '--config',
                               'hc_m10_i10.yaml', '--checkpoint', path, '--json'] + TINY,
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-2000:]
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert results[0]['images'] == results[1]['images'] > 0
    assert (results[0]['top1'], results[0]['top5']) == (results[1]['top1'], results[1]['top5'])
