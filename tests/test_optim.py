"""hcnet's lbsgd against MXNet's LBSGD on identical gradients."""
import mxnet as mx
import numpy as np
import pytest

import hcnet.train.optim  # noqa: F401  (registers lbsgd)
from hcnet.train.optim import LBSGD


def _run(opt, steps=4, seed=0, aggregated=True):
    rs = np.random.RandomState(seed)
    shapes = [(8, 4, 3, 3), (8,), (16, 8), (5,)]
    weights = [mx.nd.array(rs.randn(*s)) for s in shapes]
    grads_seq = [[mx.nd.array(rs.randn(*s) * 10 ** rs.uniform(-2, 1)) for s in shapes]
                 for _ in range(steps)]
    updater = mx.optimizer.get_updater(opt)
    for grads in grads_seq:
        if aggregated:
            updater(list(range(len(weights))), grads, weights)
        else:
            for i, (g, w) in enumerate(zip(grads, weights)):
                updater(i, g, w)
    return [w.asnumpy() for w in weights]


def test_registered_as_lbsgd():
    assert isinstance(mx.optimizer.create('lbsgd'), LBSGD)
    assert mx.optimizer.LBSGD is not LBSGD        # MXNet's stays reachable


@pytest.mark.parametrize('momentum', [0.0, 0.9])
def test_lars_matches_mxnet_lbsgd_lars_strategy(momentum):
    common = dict(learning_rate=0.1, wd=3e-5, momentum=momentum, rescale_grad=1.0 / 64)
    ours = _run(LBSGD(lars=True, **common))
    ref = _run(mx.optimizer.LBSGD(warmup_strategy='lars', **common), aggregated=False)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_without_lars_matches_mxnet_lbsgd_after_warmup():
    # MXNet's warmup multiplier is 1 when batch_scale=1: plain momentum SGD
    common = dict(learning_rate=0.05, wd=1e-4, momentum=0.9, rescale_grad=0.5)
    ours = _run(LBSGD(lars=False, **common))
    ref = _run(mx.optimizer.LBSGD(warmup_strategy='linear', batch_scale=1, **common),
               aggregated=False)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_lars_ratio_is_clipped_and_lr_follows_the_schedule():
    sched = mx.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=1.0)
    opt = LBSGD(lars=True, learning_rate=1.0, lr_scheduler=sched)
    w = mx.nd.ones((4,)) * 1e3                     # huge weight, tiny grad: ratio -> 100
    g = mx.nd.ones((4,)) * 1e-6
    ratio = opt._ratios([w], [g], mx.nd.array([0.0])).asscalar()
    assert ratio == pytest.approx(100.0)
    ratio = opt._ratios([mx.nd.ones((4,)) * 1e-6], [mx.nd.ones((4,))], mx.nd.array([0.0]))
    assert ratio.asscalar() == pytest.approx(0.01)


def test_multi_precision_float16():
    opt = LBSGD(lars=True, momentum=0.9, learning_rate=0.1, multi_precision=True)
    updater = mx.optimizer.get_updater(opt)
    w = mx.nd.ones((10,), dtype='float16')
    updater([0], [mx.nd.ones((10,), dtype='float16')], [w])
    assert w.dtype == np.float16 and float(w.asnumpy()[0]) < 1.0


def test_many_parameters_in_one_step_match_per_parameter_updates():
    """More parameters than one fused kernel call takes (MXNet caps it at 60)."""
    rs = np.random.RandomState(1)
    shapes = [(3, 2)] * 130
    def run(aggregated):
        ws = [mx.nd.array(rs_.randn(*s)) for s, rs_ in zip(shapes, [np.random.RandomState(i) for i in range(130)])]
        gs = [mx.nd.array(np.random.RandomState(1000 + i).randn(*s)) for i, s in enumerate(shapes)]
        upd = mx.optimizer.get_updater(LBSGD(lars=True, momentum=0.9, learning_rate=0.1))
        if aggregated:
            upd(list(range(len(ws))), gs, ws)
        else:
            for i, (g, w) in enumerate(zip(gs, ws)):
                upd(i, g, w)
        return [w.asnumpy() for w in ws]
    for a, b in zip(run(True), run(False)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
