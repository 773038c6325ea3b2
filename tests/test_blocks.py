"""Blocks: IdleBlock (sides, idle channels, reduction variant), ISB, MBBlock, SE, shuffle."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.gluon import nn

from hcnet.nn import (HardSigmoid, IdleBlock, InvertedShuffleBlock, MBBlock, SEModule,
                      channel_shuffle)
from conftest import copy_params, rand, randomize


def _build(cls, *args, seed=0, hybridize=False, **kwargs):
    block = cls(*args, **kwargs)
    block.initialize()
    randomize(block, seed)
    if hybridize:
        block.hybridize()
    return block


def _avg_pool3x3_exclude_pad(x, stride):
    """3x3 average pool, padding 1, padded cells not counted (float64 numpy)."""
    n, c, h, w = x.shape
    oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, r1 = max(0, i * stride - 1), min(h, i * stride + 2)
            c0, c1 = max(0, j * stride - 1), min(w, j * stride + 2)
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].astype(np.float64).mean(axis=(2, 3))
    return out


def _shuffle2_numpy(x):
    """ShuffleNet 2-group shuffle: output channel j*2+k is input channel k*(C/2)+j."""
    n, c = x.shape[:2]
    half = c // 2
    out = np.empty_like(x)
    for k in range(2):
        for j in range(half):
            out[:, j * 2 + k] = x[:, k * half + j]
    return out


# --------------------------------------------------------------------------- IdleBlock
@pytest.mark.parametrize('hybridize', [False, True])
@pytest.mark.parametrize('alpha', [0.5, 0.25])
@pytest.mark.parametrize('side', ['L', 'R'])
def test_idle_channels_pass_through_bit_exact(side, alpha, hybridize):
    c = 16
    blk = _build(IdleBlock, c, 48, kernel_size=3, se_channels=4, side=side, alpha=alpha,
                 prefix='idle_', hybridize=hybridize)
    x = rand((3, c, 10, 10), seed=1)
    out = blk(x).asnumpy()
    xn = x.asnumpy()
    idle = int(round(alpha * c))
    active = c - idle
    assert out.shape == xn.shape
    x2 = xn[:, active:]                      # the last alpha*C input channels are idle
    if side == 'R':                          # concat(y1, x2): idle channels at the end
        assert np.array_equal(out[:, active:], x2)
        y1 = out[:, :active]
    else:                                    # concat(x2, y1): idle channels first
        assert np.array_equal(out[:, :idle], x2)
        y1 = out[:, idle:]
    # the active half was transformed (not a copy of x1)
    assert not np.allclose(y1, xn[:, :active])


def test_idle_active_half_is_mbblock_of_x1():
    """y1 = MBBlock(x1) at the substituted block's expanded width, with residual."""
    c, exp = 16, 48
    blk = _build(IdleBlock, c, exp, kernel_size=5, se_channels=4, side='R', prefix='i_')
    ref = MBBlock(8, exp, 8, kernel_size=5, se_channels=4, prefix='i_')
    ref.initialize()
    copy_params(blk, ref)
    x = rand((2, c, 9, 9), seed=2)
    out = blk(x).asnumpy()
    expect = ref(x[:, :8]).asnumpy()
    np.testing.assert_allclose(out[:, :8], expect, rtol=1e-5, atol=1e-5)
    assert ref.use_residual
    # expanded width of the active branch is the MBBlock's, not alpha times it
    assert blk.active.body[0][0].weight.shape == (exp, 8, 1, 1)


@pytest.mark.parametrize('hybridize', [False, True])
def test_idle_L_and_R_differ_only_by_channel_order(hybridize):
    c = 24
    kw = dict(kernel_size=3, se_channels=8, prefix='same_')
    r = _build(IdleBlock, c, 72, side='R', seed=3, **kw)
    l = IdleBlock(c, 72, side='L', **kw)
    l.initialize()
    copy_params(r, l)
    if hybridize:
        r.hybridize()
        l.hybridize()
    x = rand((2, c, 8, 8), seed=4)
    out_r, out_l = r(x).asnumpy(), l(x).asnumpy()
    active = r.active_channels
    assert not np.array_equal(out_r, out_l)
    assert np.array_equal(out_l, np.concatenate([out_r[:, active:], out_r[:, :active]], axis=1))


@pytest.mark.parametrize('side', ['L', 'R'])
@pytest.mark.parametrize('size', [8, 9])
def test_idle_reduction_variant(side, size):
    cin, exp, cout, stride = 16, 64, 24, 2
    blk = _build(IdleBlock, cin, exp, cout, kernel_size=5, stride=stride, se_channels=4,
                 side=side, prefix='red_', hybridize=True)
    x = rand((2, cin, size, size), seed=5)
    out = blk(x).asnumpy()
    osz = (size - 1) // stride + 1
    assert out.shape == (2, cout, osz, osz)
    idle = cin // 2
    pooled = _avg_pool3x3_exclude_pad(x.asnumpy()[:, cin - idle:], stride)
    got = out[:, cout - idle:] if side == 'R' else out[:, :idle]
    np.testing.assert_allclose(got, pooled, rtol=1e-5, atol=1e-6)
    # no residual in the active branch (shapes differ)
    assert not blk.active.use_residual


def test_idle_width_change_at_stride_1_passes_idle_unchanged():
    blk = _build(IdleBlock, 16, 48, 40, side='R', prefix='w_')
    x = rand((1, 16, 6, 6), seed=6)
    out = blk(x).asnumpy()
    assert out.shape == (1, 40, 6, 6)
    assert np.array_equal(out[:, 32:], x.asnumpy()[:, 8:])


@pytest.mark.parametrize('kwargs', [dict(side='X'), dict(alpha=0.0), dict(alpha=1.0),
                                    dict(out_channels=8)])
def test_idle_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        IdleBlock(16, 48, **kwargs)


@pytest.mark.parametrize('channels', [(12, 12), (20, 20), (8, 16), (3, 5)])
def test_concat_channels_values_and_gradients(channels):
    from hcnet.nn.blocks import concat_channels
    a, b = rand((2, channels[0], 5, 7), seed=20), rand((2, channels[1], 5, 7), seed=21)
    an, bn = a.asnumpy(), b.asnumpy()
    assert np.array_equal(concat_channels(mx.nd, a, b).asnumpy(),
                          np.concatenate([an, bn], axis=1))
    a.attach_grad()
    b.attach_grad()
    head = rand((2, sum(channels), 5, 7), seed=22)
    with autograd.record():
        out = concat_channels(mx.nd, a, b)
    out.backward(head)
    hn = head.asnumpy()
    assert np.array_equal(a.grad.asnumpy(), hn[:, :channels[0]])
    assert np.array_equal(b.grad.asnumpy(), hn[:, channels[0]:])


def test_idle_block_backward_through_blocked_layouts():
    """Gradients flow through a stack of IdleBlocks at widths whose split point
    is not a multiple of oneDNN's channel block (24 -> 12, 40 -> 20)."""
    net = nn.HybridSequential()
    net.add(nn.Conv2D(24, 3, padding=1, in_channels=3),
            IdleBlock(24, 72, side='R'), IdleBlock(24, 72, side='L'),
            IdleBlock(24, 96, 40, stride=2, side='R'), IdleBlock(40, 120, side='R'),
            nn.Conv2D(16, 1, in_channels=40))
    net.initialize()
    net.hybridize()
    x = rand((4, 3, 16, 16), seed=23)
    for _ in range(3):
        with autograd.record(train_mode=True):
            loss = (net(x) ** 2).mean()
        loss.backward()
    grads = [p.grad().asnumpy() for p in net.collect_params().values() if p.grad_req != 'null']
    assert all(np.isfinite(g).all() for g in grads)
    assert np.abs(net[0].weight.grad().asnumpy()).sum() > 0


# --------------------------------------------------------------------------- ISB / shuffle
def test_channel_shuffle_is_shufflenet_permutation():
    x = rand((2, 6, 3, 3), seed=7)
    got = channel_shuffle(mx.nd, x, 2, x.shape[1]).asnumpy()
    xn = x.asnumpy()
    # channel order of the output: 0, 3, 1, 4, 2, 5
    expect = np.stack([xn[:, i] for i in (0, 3, 1, 4, 2, 5)], axis=1)
    assert np.array_equal(got, expect)


@pytest.mark.parametrize('side', ['L', 'R'])
@pytest.mark.parametrize('stride,cout', [(1, None), (2, 32)])
def test_isb_is_shuffled_idleblock(side, stride, cout):
    kw = dict(out_channels=cout, kernel_size=3, stride=stride, se_channels=4, side=side,
              prefix='blk_')
    idle = _build(IdleBlock, 16, 48, seed=8, **kw)
    isb = InvertedShuffleBlock(16, 48, **kw)
    isb.initialize()
    copy_params(idle, isb)
    assert isb.shuffle and not idle.shuffle
    x = rand((2, 16, 8, 8), seed=9)
    out_idle, out_isb = idle(x).asnumpy(), isb(x).asnumpy()
    assert not np.array_equal(out_idle, out_isb)
    assert np.array_equal(out_isb, _shuffle2_numpy(out_idle))


# --------------------------------------------------------------------------- MBBlock
def _convs(block):
    return [b for b in _all(block) if isinstance(b, nn.Conv2D)]


def _all(block):
    yield block
    for child in block._children.values():
        yield from _all(child)


@pytest.mark.parametrize('cin,cout,stride,residual', [
    (16, 16, 1, True), (16, 24, 1, False), (16, 16, 2, False), (16, 24, 2, False)])
def test_mbblock_residual_only_for_stride1_same_width(cin, cout, stride, residual):
    blk = _build(MBBlock, cin, 48, cout, kernel_size=3, stride=stride, prefix='mb_')
    assert blk.use_residual is residual
    x = rand((2, cin, 8, 8), seed=10)
    out = blk(x).asnumpy()
    body = blk.body(x).asnumpy()
    assert out.shape == (2, cout, (8 - 1) // stride + 1, (8 - 1) // stride + 1)
    if residual:
        np.testing.assert_allclose(out, body + x.asnumpy(), rtol=1e-6, atol=1e-6)
    else:
        assert np.array_equal(out, body)


@pytest.mark.parametrize('exp,has_expand', [(16, False), (48, True)])
def test_mbblock_expand_conv_only_when_exp_differs(exp, has_expand):
    blk = MBBlock(16, exp, 16, kernel_size=3, se_channels=4, prefix='mb_')
    convs = [c for c in _convs(blk) if 'se_' not in c.name]
    # expand 1x1 (optional), depthwise kxk, project 1x1
    assert len(convs) == (3 if has_expand else 2)
    first = convs[0]
    if has_expand:
        assert first._kwargs['kernel'] == (1, 1) and first._kwargs['num_group'] == 1
    else:
        assert first._kwargs['num_group'] == exp  # depthwise comes first
    assert any('expand_' in k for k in blk.collect_params()) is has_expand


def test_drop_connect_drops_whole_samples_in_training():
    blk = _build(MBBlock, 8, 24, 8, kernel_size=3, drop_connect=0.99, prefix='dc_')
    x = rand((32, 8, 6, 6), seed=11)
    xn = x.asnumpy()
    with autograd.record(train_mode=True):
        out = blk(x).asnumpy()
    dropped = [np.array_equal(out[i], xn[i]) for i in range(32)]
    assert sum(dropped) >= 16        # expected ~31.7 of 32 at rate 0.99


def test_drop_connect_per_sample_mask_and_scaling():
    p = 0.5
    blk = _build(MBBlock, 8, 24, 8, kernel_size=3, drop_connect=p, prefix='dc_')
    x = rand((32, 8, 6, 6), seed=12)
    xn = x.asnumpy()
    with autograd.record(train_mode=True):
        out = blk(x).asnumpy()
        body = blk.body(x).asnumpy()   # BN in training mode: same batch statistics
    kept = 0
    for i in range(32):
        if np.array_equal(out[i], xn[i]):
            continue
        kept += 1
        # a kept sample gets the branch scaled by 1 / (1 - p) (inverted dropout)
        np.testing.assert_allclose(out[i] - xn[i], body[i] / (1 - p), rtol=1e-4, atol=1e-5)
    assert 0 < kept < 32


@pytest.mark.parametrize('hybridize', [False, True])
def test_drop_connect_inference_is_deterministic(hybridize):
    blk = _build(MBBlock, 8, 24, 8, kernel_size=3, drop_connect=0.99, prefix='dc_',
                 hybridize=hybridize)
    x = rand((8, 8, 6, 6), seed=13)
    a, b = blk(x).asnumpy(), blk(x).asnumpy()
    assert np.array_equal(a, b)
    np.testing.assert_allclose(a, blk.body(x).asnumpy() + x.asnumpy(), rtol=1e-6, atol=1e-6)


def test_idle_block_drop_connect_only_touches_active_half():
    blk = _build(IdleBlock, 16, 48, drop_connect=0.99, side='R', prefix='idc_')
    x = rand((16, 16, 5, 5), seed=14)
    xn = x.asnumpy()
    with autograd.record(train_mode=True):
        out = blk(x).asnumpy()
    assert np.array_equal(out[:, 8:], xn[:, 8:])
    assert sum(np.array_equal(out[i, :8], xn[i, :8]) for i in range(16)) >= 8


def test_no_drop_module_without_residual():
    assert MBBlock(8, 24, 16, drop_connect=0.5).drop is None
    assert MBBlock(8, 24, 8, stride=2, drop_connect=0.5).drop is None
    assert MBBlock(8, 24, 8, drop_connect=0.0).drop is None
    assert MBBlock(8, 24, 8, drop_connect=0.5).drop is not None


# --------------------------------------------------------------------------- SE
def test_se_module_matches_numpy():
    se = _build(SEModule, 6, 2, gate_layer=HardSigmoid, prefix='se_')
    x = rand((2, 6, 4, 4), seed=15)
    out = se(x).asnumpy()
    xn = x.asnumpy().astype(np.float64)
    w1 = se.reduce.weight.data().asnumpy()[:, :, 0, 0]
    b1 = se.reduce.bias.data().asnumpy()
    w2 = se.expand.weight.data().asnumpy()[:, :, 0, 0]
    b2 = se.expand.bias.data().asnumpy()
    pooled = xn.mean(axis=(2, 3))
    hidden = np.maximum(pooled @ w1.T + b1, 0)
    gate = np.clip((hidden @ w2.T + b2) / 6 + 0.5, 0, 1)
    np.testing.assert_allclose(out, xn * gate[:, :, None, None], rtol=1e-5, atol=1e-6)
