"""hcnet.deploy: the inference graph equals the Gluon network (values, not speed)."""
import collections
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.gluon import nn

import hcnet
from hcnet.deploy import (DEFAULTS, ORIGINAL, ORT_OPTIONS, compare, export, optimize,
                          patch_onnx, to_symbol)
from hcnet.deploy.onnx import export_onnx
from hcnet.nn import IdleBlock, walk_blocks
from hcnet.nn.blocks import SEModule
from conftest import rand

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ['hc_m5_i10', 'hc_m10_i10', 'hc_m10_i10_lr', 'hc_m1_i14', 'hc_m1_isb14',
         'hc_effb0_m7_i9']
SIZE = 64
TOL = 1e-4


def trained_like(net, size=SIZE, seed=0):
    """BatchNorm statistics of random images, then perturbed; random gamma / beta.

    Fresh statistics make every BatchNorm the identity and shrink activations to
    nothing; these keep them O(1) and make every folded BN non-trivial. (Wilder
    statistics make deep nets so ill-conditioned that float32 Gluon itself is
    1e-3 away from float64 -- no use for a 1e-4 comparison.)
    """
    bns = []

    def walk(block):
        if isinstance(block, nn.BatchNorm):
            bns.append(block)
        for child in block._children.values():
            walk(child)
    walk(net)
    for bn in bns:
        bn._kwargs['momentum'] = 0.0
    with autograd.record(train_mode=True):
        net(rand((4, 3, size, size), seed=seed + 100))
    rng = np.random.RandomState(seed)
    for bn in bns:
        bn._kwargs['momentum'] = 0.9
        p = {k.rsplit('_', 1)[-1] if 'running' not in k else k[k.index('running'):]: v
             for k, v in bn.params.items()}
        c = p['gamma'].shape[0]
        var = p['running_var'].data().asnumpy()
        p['running_var'].set_data(mx.nd.array(var * rng.uniform(0.8, 1.25, c)))
        p['running_mean'].set_data(p['running_mean'].data()
                                   + mx.nd.array(rng.uniform(-0.1, 0.1, c) * np.sqrt(var)))
        p['gamma'].set_data(mx.nd.array(rng.uniform(0.6, 1.0, c)))
        p['beta'].set_data(mx.nd.array(rng.uniform(-0.1, 0.1, c)))
    return net


@pytest.fixture(scope='module')
def nets():
    cache = {}

    def get(name):
        if name not in cache:
            mx.random.seed(7)
            cache[name] = trained_like(hcnet.get_model(name))
        return cache[name]
    return get


def _x(batch=2, size=SIZE, seed=1):
    return rand((batch, 3, size, size), seed=seed)


@pytest.mark.parametrize('name', NAMES)
def test_optimized_equals_original(name, nets):
    net = nets(name)
    x = _x()
    ref = net(x).asnumpy()
    assert np.abs(ref).max() > 1e-2                  # non-trivial outputs
    fast = optimize(net, SIZE)                       # the MXNet fast path (fused)
    assert compare(net, fast, x) <= TOL
    # the ONNX Runtime graph, run by MXNet (same symbol ONNX is exported from)
    ort_graph = optimize(net, SIZE, fuse=False, **ORT_OPTIONS)
    assert compare(net, ort_graph, x) <= TOL
    # batch 1 on the fused net as well (it was fused for batch 1)
    assert compare(net, fast, _x(batch=1, seed=3)) <= TOL


@pytest.mark.parametrize('name', ['hc_m5_i10', 'hc_m10_i10_lr', 'hc_m1_isb14'])
def test_each_switch_alone_is_exact(name, nets):
    net = nets(name)
    x = _x()
    original = optimize(net, SIZE, fuse=False, **ORIGINAL)
    # every switch off reproduces the Gluon graph bit for bit
    assert np.array_equal(original(x).asnumpy(), net(x).asnumpy())
    for key in ('fold_bn', 'plain_concat', 'track_idle', 'global_pool', 'hswish_conv'):
        one = dict(ORIGINAL, **{key: True})
        assert compare(net, optimize(net, SIZE, fuse=False, **one), x) <= TOL, key
    for extra in (dict(align=16), dict(align=8, split_producers=True),
                  dict(align=16, split_producers=True, split_ratio=1.0),
                  dict(align=16, split_producers=True, split_ratio=3.0),
                  dict(se_upsample=True),
                  dict(align=16, split_producers=True, block_split=True,
                       residual_split='concat')):
        opts = dict(ORIGINAL, track_idle=True, **extra)
        assert compare(net, optimize(net, SIZE, fuse=False, **opts), x) <= TOL, extra


def test_other_input_size_and_unfused(nets):
    net = nets('hc_m10_i10')
    x = _x(batch=1, size=40, seed=5)
    assert compare(net, optimize(net, 40, fuse=False), x) <= TOL


def test_idle_runs_split_once_and_concatenate_once(nets):
    """hc_m5_i10 = M | M I | M I I | M I I I | M I | M I I plus an idle stage 1:
    no slices at all, one concat per run of IdleBlocks, BN folded everywhere."""
    net = nets('hc_m5_i10')
    for opts in (DEFAULTS, ORT_OPTIONS):
        graph = to_symbol(net, SIZE, **opts)
        ops = graph.op_counts()
        assert 'BatchNorm' not in ops and 'slice_axis' not in ops
        assert ops.get('Concat', 0) <= 6              # <= one per run (stage 1 may be masked)
        assert graph.stats['folded_bn'] >= 46
    original = to_symbol(net, SIZE, **ORIGINAL).op_counts()
    assert original['slice_axis'] == 20 and original['Concat'] == 10


def test_lr_alternation_moves_no_channels(nets):
    """L/R alternation only swaps which segment is active: as few concats as all-R."""
    r = to_symbol(nets('hc_m10_i10'), SIZE, **DEFAULTS).op_counts()
    lr = to_symbol(nets('hc_m10_i10_lr'), SIZE, **DEFAULTS).op_counts()
    assert lr.get('Concat', 0) == r.get('Concat', 0)
    # the only slices: the residual input of stage 4's producer (residual_split)
    assert lr.get('slice_axis', 0) == r.get('slice_axis', 0) == 2
    # ... which residual_split='concat' emits in parts instead: one more concat, no slice
    for name in ('hc_m10_i10', 'hc_m10_i10_lr'):
        graph = to_symbol(nets(name), SIZE, **dict(DEFAULTS, residual_split='concat'))
        ops = graph.op_counts()
        assert 'slice_axis' not in ops and ops['Concat'] == r['Concat'] + 1, name
        sliced = to_symbol(nets(name), SIZE, **DEFAULTS).conv_madds(SIZE)
        twice = to_symbol(nets(name), SIZE, **dict(DEFAULTS, residual_split='producer'))
        # nothing computed twice; under L/R the parts (40 + 40) are padded apart
        assert sliced <= graph.conv_madds(SIZE) < twice.conv_madds(SIZE), name
        if name == 'hc_m10_i10':                # a block cut: 48 + 32 rows, no padding
            assert graph.conv_madds(SIZE) == sliced


def test_idle_block_stack_outside_the_zoo():
    """A plain HybridSequential with odd widths, alpha != 1/2, a reduction variant."""
    net = nn.HybridSequential(prefix='toy_')
    with net.name_scope():
        net.add(nn.Conv2D(20, 3, padding=1, in_channels=3, use_bias=False),
                nn.BatchNorm(in_channels=20), nn.Activation('relu'),
                IdleBlock(20, 48, side='R', alpha=0.25, se_channels=4),
                IdleBlock(20, 48, side='L', alpha=0.25),
                IdleBlock(20, 64, 30, stride=2, side='R'),
                IdleBlock(30, 60, side='R', shuffle=True),
                nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(7, in_units=30))
    net.initialize(mx.init.MSRAPrelu())
    trained_like(net, size=16)
    x = _x(size=16)
    for opts in (DEFAULTS, ORT_OPTIONS, dict(DEFAULTS, align=1), ORIGINAL):
        fast = optimize(net, 16, fuse=opts is DEFAULTS, **opts)
        assert compare(net, fast, x) <= TOL, opts


def test_unknown_option_and_layers():
    with pytest.raises(TypeError):
        to_symbol(hcnet.get_model('hc_m15_i0'), 32, bogus=True)
    with pytest.raises(ValueError):
        to_symbol(hcnet.get_model('hc_m15_i0'), None, se_upsample=True)
    with pytest.raises(ValueError, match='residual_split'):
        to_symbol(hcnet.get_model('hc_m15_i0'), 32, residual_split='copy')

    class Scale(nn.HybridBlock):                    # a foreign layer with a parameter
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.s = self.params.get('s', shape=(1,), init=mx.init.Constant(2.0))

        def hybrid_forward(self, F, x, s):
            return F.broadcast_mul(x, s)
    net = nn.HybridSequential(prefix='foreign_')
    with net.name_scope():
        net.add(nn.Conv2D(8, 1, in_channels=3), Scale(), nn.Flatten(), nn.Dense(3, in_units=8 * 25))
    net.initialize()
    graph = to_symbol(net, 5)
    assert graph.stats['fallback'] == ['Scale']
    x = _x(size=5)
    assert compare(net, optimize(net, 5), x) <= TOL






@pytest.mark.parametrize('name', ['hc_m5_i10', 'hc_m10_i10', 'hc_effb0_m7_i9'])
def test_onnx_export_runs_in_blocked_layout(name, nets, tmp_path):
    """The ONNX Runtime graph reproduces Gluon, and ONNX Runtime keeps it in its NCHWc
    layout from end to end: no Split, no unfused Add, one reorder (before the FC).
    (``hc_m10_i10`` cuts a residual MBBlock's output: with ``residual_split='slice'``
    that was a Split, and the next four blocks' adds ran unfused between reorders.)"""
    onnx = pytest.importorskip('onnx')
    ort = pytest.importorskip('onnxruntime')
    net = nets(name)
    sym_file, params_file = export(net, str(tmp_path / name), SIZE, **ORT_OPTIONS)
    onnx_file = str(tmp_path / (name + '.onnx'))
    export_onnx(sym_file, params_file, onnx_file, (1, 3, SIZE, SIZE),
                                dynamic_batch=False)
    model = onnx.load(onnx_file)
    n_se = sum(1 for b in walk_blocks(net) if isinstance(b, SEModule))
    assert n_se >= 8 and patch_onnx(model) == n_se                   # one per SE
    onnx.save(model, onnx_file)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / 'optimized.onnx')
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
    x = _x(batch=1, seed=9)
    got = session.run(None, {session.get_inputs()[0].name: x.asnumpy()})[0]
    ref = net(x).asnumpy()
    assert np.abs(got - ref).max() / np.abs(ref).max() <= TOL
    nodes = onnx.load(str(tmp_path / 'optimized.onnx')).graph.node
    if not any(n.domain.endswith('nchwc') for n in nodes):
        pytest.skip('this ONNX Runtime build / CPU does not use the NCHWc layout')
    ops = collections.Counter(n.op_type for n in nodes)
    assert ops.get('Split', 0) == 0 and ops.get('Slice', 0) == 0 and ops.get('Add', 0) == 0
    assert ops.get('ReorderOutput', 0) <= 1 and ops.get('ReorderInput', 0) <= 1


def test_emitted_madds_count_padding_and_nothing_else():
    """The original graph computes exactly the network's MAdds; the fast one adds only
    padding, and cutting runs at block boundaries pads less than cutting at the half."""
    for name in ('hc_m5_i10', 'hc_m10_i10'):
        net = hcnet.get_model(name)
        logical = hcnet.count(net, 224).standard()[0] * 1e6
        assert to_symbol(net, 224, **ORIGINAL).conv_madds(224) == pytest.approx(logical,
                                                                                 rel=1e-6)
        fast = to_symbol(net, 224, **DEFAULTS)
        half_cut = to_symbol(net, 224, **dict(DEFAULTS, block_split=False,
                                              residual_split='producer'))
        assert logical < fast.conv_madds(224) < half_cut.conv_madds(224)
        assert fast.conv_madds(224) < 1.25 * logical
        assert fast.stats['masked_blocks'] > 0
    # 1x1 work alone: Adjacent+1 (each substituted MBBlock -> two IdleBlocks of half
    # the 1x1 work) has exactly the baseline's; its extra MAdds are depthwise and SE
    pw = {n: to_symbol(hcnet.get_model(n), 224, **ORIGINAL).conv_madds(224, pointwise=True)
          for n in ('hc_m15_i0', 'hc_m10_i10', 'hc_m5_i10')}
    assert pw['hc_m10_i10'] == pw['hc_m15_i0'] > pw['hc_m5_i10'] > 0.7 * pw['hc_m15_i0']
    # L/R alternation: block cuts would move channels, so they are not used
    lr = hcnet.get_model('hc_m10_i10_lr')
    assert (to_symbol(lr, 224, **DEFAULTS).conv_madds(224)
            == to_symbol(lr, 224, **dict(DEFAULTS, block_split=False)).conv_madds(224))
