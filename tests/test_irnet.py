"""IR-Net (ir-net.txt): Table 4 layer by layer, the three block kinds, CondConv."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import hcnet
from hcnet.models.irnet import CondConvIRB, IRNet
from hcnet.nn import CondConv2D, MBBlock
from hcnet.paper.irnet_table4 import (PAPER_TABLE4, PAPER_TABLE4_NOTES, PAPER_TABLE4_TOTAL,
                                      irnet_layer_macs, render_irnet_table)
from conftest import rand, randomize, walk


# --------------------------------------------------------------------------------------
# Table 4

@pytest.fixture(scope='module')
def layers_a():
    return irnet_layer_macs('irnet_a')


def test_layer_macs_equal_table4_or_are_explained(layers_a):
    assert len(layers_a) == len(PAPER_TABLE4) == 13
    for i, (ours, paper) in enumerate(zip(layers_a, PAPER_TABLE4)):
        assert ours.paper == paper and ours.rep == paper.rep
        assert ours.operation == paper.operation
        if i in PAPER_TABLE4_NOTES:
            assert ours.macs != paper.macs and ours.note
        else:
            assert ours.macs == paper.macs, (i, ours.operation, ours.macs, paper.macs)
            assert not ours.note
    assert layers_a[0].macs == 1354752 and layers_a[1].macs == 8228864
    assert sum(x.macs for x in layers_a) == PAPER_TABLE4_TOTAL[0] == 193898304


def test_row_4_is_the_papers_slip(layers_a):
    row = layers_a[4]
    assert row.units == ('stage2_block2',)
    # the paper counted all three convolutions at the 28x28 output
    assert row.paper.macs == 28 * 28 * (24 * 96 + 96 * 9 + 96 * 40)
    assert row.macs == 56 * 56 * 24 * 96 + 28 * 28 * (96 * 9 + 96 * 40) == 10913280
    # ... but its Total uses our value: the paper's rows fall short of it by the difference
    assert PAPER_TABLE4_TOTAL[0] - sum(p.macs for p in PAPER_TABLE4) == row.macs - row.paper.macs


def test_filter_cx_column_is_reproduced_by_the_papers_rule(layers_a):
    for ours, paper in zip(layers_a, PAPER_TABLE4):
        assert ours.filter_cx_paper_rule == paper.filter_cx
    assert sum(x.filter_cx_paper_rule for x in layers_a) == PAPER_TABLE4_TOTAL[1]
    # the real weights: depthwise 9*Ne per block, the classifier counted
    assert layers_a[1].filter_cx == 16 * 64 + 9 * 64 + 64 * 16
    assert layers_a[-1].filter_cx == 1280 * 100


def test_per_block_breakdown_covers_every_block():
    net = IRNet('A')
    cx = hcnet.count(net, 56)
    assert list(cx.blocks) == [unit for unit, *_ in net.block_plan]
    assert len(cx.blocks) == 16
    assert [n for n in cx.blocks if n.startswith('stage5')] == [
        'stage5_block%d' % b for b in range(1, 6)]
    names = list(net.collect_params())
    assert any('_stem_' in n for n in names) and any('_head_' in n for n in names)
    assert any('_output_' in n for n in names)


def test_b_and_c_tables_add_up():
    b, c = irnet_layer_macs('irnet_b'), irnet_layer_macs('irnet_c')
    a = irnet_layer_macs('irnet_a')
    # SE: two 1x1 convolutions Ne -> Ne/4 -> Ne per block on the pooled vector
    se = sum(2 * exp * (exp // 4) for _, _, exp, _, _ in IRNet('B').block_plan)
    assert sum(x.macs for x in b) - sum(x.macs for x in a) == se
    net = IRNet('C')
    convs = [blk for blk in walk(net) if isinstance(blk, CondConv2D)]
    assert len(convs) == 3 * 16
    extra = sum(cc.num_experts * cc.channels * cc.in_channels // cc.groups * cc.kernel_size ** 2
                + cc.in_channels * cc.num_experts for cc in convs)       # mixing + routing
    assert sum(x.macs_efficient for x in c) == sum(x.macs for x in b) + extra
    assert sum(x.macs for x in c) > 3 * sum(x.macs for x in a)           # 4 expert convs
    assert all(x.macs_efficient is None for x in a)


def test_render_irnet_table(layers_a):
    md = render_irnet_table()
    assert '193,898,304' in md and '10,913,280' in md and '5,494,272' in md
    assert 'Filter Cx' in md and '24,876,208' in md
    assert '[C] kernel mixing' in md


# --------------------------------------------------------------------------------------
# networks

def test_block_kinds():
    kinds = {}
    for kind in 'ABC':
        net = IRNet(kind)
        blocks = [b for b in walk(net) if isinstance(b, (MBBlock, CondConvIRB))]
        assert len(blocks) == 16
        kinds[kind] = blocks
    assert all(isinstance(b, MBBlock) for b in kinds['A'] + kinds['B'])
    assert all(isinstance(b, CondConvIRB) for b in kinds['C'])
    assert not any('_se_' in n for n in IRNet('A').collect_params())
    params = IRNet('B').collect_params()
    se = sorted(p.shape for n, p in params.items()
                if 'stage1_block1_se_' in n and n.endswith('_weight'))
    assert se == [(16, 64, 1, 1), (64, 16, 1, 1)]                  # Ne = 64, Ne / R = 16
    residual = [b.use_residual for b in kinds['A']]               # Table 1's ID column
    assert residual == [True, False, True, False, True, True, False, True, True, True, False,
                        True, True, True, True, False]


def test_zoo_names_defaults_and_bridge():
    for name in ('irnet_a', 'irnet_b', 'irnet_c'):
        assert hcnet.model_zoo.is_model(name)
    net = hcnet.get_model('irnet_a')
    assert net.classes == 100 and net.name_in_zoo == 'irnet_a'
    import gluoncv
    assert isinstance(gluoncv.model_zoo.get_model('irnet_b', classes=10), IRNet)


@pytest.mark.parametrize('name', ['irnet_b', 'irnet_c'])
def test_build_hybridize_forward_and_train(name):
    mx.random.seed(3)
    net = hcnet.get_model(name)
    net.hybridize()
    x = rand((4, 3, 56, 56), seed=1)
    y = mx.nd.array([0, 1, 2, 99])
    out = net(x)
    assert out.shape == (4, 100) and np.isfinite(out.asnumpy()).all()
    params = {k: p for k, p in net.collect_params().items() if p.grad_req != 'null'}
    before = {k: p.data().asnumpy().copy() for k, p in params.items()}
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.05, 'momentum': 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    losses = []
    for _ in range(3):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(4)
        losses.append(float(loss.mean().asscalar()))
    assert np.isfinite(losses).all()
    changed = {k for k, p in params.items() if not np.array_equal(p.data().asnumpy(), before[k])}
    # every convolution / linear weight moves; a few BN gammas of 1.0 may get updates
    # below float32 resolution from a freshly initialised network
    weights = {k for k in params if k.endswith('_weight')}
    assert weights <= changed, sorted(weights - changed)[:5]
    assert len(changed) >= 0.95 * len(params)
    if name == 'irnet_c':
        assert any('routing' in k for k in changed)


def test_irnet_c_hybridized_equals_imperative():
    net = hcnet.get_model('irnet_c', classes=7)
    randomize(net, seed=2)
    x = rand((2, 3, 24, 24), seed=3)
    imp = net(x).asnumpy()
    net.hybridize()
    hyb = net(x).asnumpy()
    assert imp.shape == (2, 7) and np.abs(imp).max() > 0
    np.testing.assert_allclose(hyb, imp, rtol=1e-4, atol=1e-4 * np.abs(imp).max())


def test_pretrained_path_round_trip(tmp_path):
    src = hcnet.get_model('irnet_a', classes=5)
    randomize(src, seed=4)
    path = str(tmp_path / 'irnet_a.params')
    src.save_parameters(path)
    dst = hcnet.get_model('irnet_a', classes=5, pretrained=path)
    x = rand((1, 3, 32, 32), seed=5)
    assert np.array_equal(dst(x).asnumpy(), src(x).asnumpy())


# --------------------------------------------------------------------------------------
# CondConv2D

def _plain_conv(x, w, stride, groups):
    k = w.shape[-1]
    return mx.nd.Convolution(x, w, kernel=(k, k), stride=(stride, stride), pad=(k // 2, k // 2),
                             num_filter=w.shape[0], num_group=groups, no_bias=True)


@pytest.mark.parametrize('cin,cout,k,stride,groups', [(6, 10, 3, 2, 1), (8, 8, 3, 1, 8),
                                                      (6, 4, 1, 1, 1)])
def test_one_expert_equals_plain_convolution(cin, cout, k, stride, groups):
    cc = CondConv2D(cout, k, stride, groups=groups, in_channels=cin, num_experts=1)
    cc.initialize(mx.init.Normal(0.5))
    # routing pinned to 1 (sigmoid of a large bias): the layer is its single expert
    cc.routing.weight.set_data(mx.nd.zeros(cc.routing.weight.shape))
    cc.routing.bias.set_data(mx.nd.full(cc.routing.bias.shape, 40.0))
    x = rand((3, cin, 9, 9), seed=6)
    w = cc.weight.data()
    assert w.shape == (cout, cin // groups, k, k)                 # plain Conv2D layout
    expect = _plain_conv(x, w, stride, groups).asnumpy()
    assert np.allclose(cc(x).asnumpy(), expect, rtol=1e-5, atol=1e-6)
    cc.hybridize()
    assert np.allclose(cc(x).asnumpy(), expect, rtol=1e-5, atol=1e-6)
    # a free routing scales the single expert per example
    cc.routing.initialize(mx.init.Normal(1.0), force_reinit=True)
    r = cc.routing_weights(x).asnumpy()
    assert np.allclose(cc(x).asnumpy(), r[:, :, None, None] * expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('cin,cout,k,stride,groups', [(6, 10, 3, 2, 1), (8, 8, 3, 1, 8),
                                                      (8, 12, 3, 1, 4)])
def test_experts_mix_like_per_example_kernels(cin, cout, k, stride, groups):
    cc = CondConv2D(cout, k, stride, groups=groups, in_channels=cin, num_experts=4)
    cc.initialize(mx.init.Normal(0.5))
    cc.routing.initialize(mx.init.Normal(1.0), force_reinit=True)
    x = rand((3, cin, 8, 8), seed=7)
    kernels = cc.mixed_kernels(x).asnumpy()                        # (N, O, C/g, k, k)
    # (fresh arrays: MXNet's oneDNN convolution mishandles NDArray views as weights)
    expect = np.concatenate([_plain_conv(mx.nd.array(x.asnumpy()[n:n + 1]),
                                         mx.nd.array(kernels[n]), stride, groups).asnumpy()
                             for n in range(3)])
    r = cc.routing_weights(x).asnumpy()
    assert r.shape == (3, 4) and np.ptp(r, axis=0).max() > 1e-3   # examples are routed apart
    np.testing.assert_allclose(cc(x).asnumpy(), expect, rtol=1e-4, atol=1e-5)
    cc.hybridize()
    np.testing.assert_allclose(cc(x).asnumpy(), expect, rtol=1e-4, atol=1e-5)
    # expert layout round trip
    experts = cc.expert_weights().asnumpy()
    cc.set_expert_weights(experts)
    assert np.array_equal(cc.expert_weights().asnumpy(), experts)


def test_routing_and_experts_receive_gradients():
    cc = CondConv2D(6, 3, 1, in_channels=4, num_experts=4)
    cc.initialize(mx.init.Normal(0.5))
    x = rand((2, 4, 7, 7), seed=8)
    with autograd.record():
        loss = (cc(x) ** 2).sum()
    loss.backward()
    for p in (cc.routing.weight, cc.routing.bias, cc.weight):
        g = p.grad().asnumpy()
        assert np.isfinite(g).all() and np.abs(g).max() > 0, p.name


def test_condconv_madds_counted_and_efficient():
    cc = CondConv2D(10, 3, 2, in_channels=6, num_experts=4)
    cx = hcnet.count(cc, 9, channels=6)
    assert cx.madds == cc.madds(5, 5, efficient=False) == 4 * 25 * 10 * 6 * 9 + 6 * 4
    assert cc.madds(5, 5) == 25 * 10 * 6 * 9 + 4 * 10 * 6 * 9 + 6 * 4
    assert cx.params == 4 * 10 * 6 * 9 + 6 * 4 + 4          # experts + routing FC
