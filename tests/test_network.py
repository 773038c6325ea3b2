"""HCNet: every zoo network builds and runs; built blocks match the pattern; norm_layer."""
import json

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.gluon import nn

import hcnet
from hcnet.model_zoo import HC_RECIPES
from hcnet.nn import IdleBlock, MBBlock
from conftest import NAME_RE, rand, walk

NAMES = list(HC_RECIPES)


@pytest.fixture(scope='module')
def nets():
    """One default-built network per zoo name, shared by this module's tests."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = hcnet.get_model(name)
        return cache[name]
    return get


def _stage_blocks(net):
    """The blocks of each stage: children of the HybridSequentials in net.features."""
    stages = [c for c in net.features._children.values()
              if isinstance(c, nn.HybridSequential) and c.prefix.split('_')[-2].startswith('stage')]
    return [list(stage._children.values()) for stage in stages]


def _scale_close(imp, hyb, rel=1e-5):
    scale = float(np.abs(imp).max())
    assert scale > 0 and np.isfinite(imp).all() and np.isfinite(hyb).all()
    np.testing.assert_allclose(hyb, imp, rtol=rel, atol=rel * scale)


def test_zoo_has_28_networks():
    assert len(hcnet.list_models('hc_')) == 28 and len(NAMES) == 28


@pytest.mark.parametrize('name', NAMES)
def test_forward_hybridized_matches_imperative(name, nets):
    net = nets(name)
    x224, x32 = rand((1, 3, 224, 224), seed=1), rand((1, 3, 32, 32), seed=2)
    imp224, imp32 = net(x224).asnumpy(), net(x32).asnumpy()
    net.hybridize()
    hyb224, hyb32 = net(x224).asnumpy(), net(x32).asnumpy()
    assert imp224.shape == hyb224.shape == (1, 1000)
    assert imp32.shape == hyb32.shape == (1, 1000)
    # Fresh MSRA init shrinks activations a lot (outputs ~1e-8..1e-13): compare
    # relative to the output scale, which is what atol=1e-5 means for O(1) outputs.
    _scale_close(imp224, hyb224)
    _scale_close(imp32, hyb32)
    # the network responds to its input (not a constant)
    assert not np.allclose(imp224, net(rand((1, 3, 224, 224), seed=3)).asnumpy(),
                           rtol=1e-3, atol=1e-3 * float(np.abs(imp224).max()))


@pytest.mark.parametrize('name', NAMES)
def test_classes_kwarg(name):
    net = hcnet.get_model(name, classes=10)
    net.hybridize()
    out = net(rand((2, 3, 32, 32), seed=4))
    assert out.shape == (2, 10)
    assert net.output[-1].weight.shape[0] == 10


@pytest.mark.parametrize('name', NAMES)
def test_pattern_counts_match_name_and_built_blocks(name, nets):
    net = nets(name)
    m = NAME_RE.fullmatch(name)
    assert m, name
    num_mb, num_idle = int(m.group(1)), int(m.group(2))
    assert (net.pattern.num_mb, net.pattern.num_idle) == (num_mb, num_idle)
    stages = _stage_blocks(net)
    assert len(stages) == len(net.pattern.stages) == len(net.base.stages)
    built = [b for stage in stages for b in stage]
    n_idle = sum(isinstance(b, IdleBlock) for b in built)
    n_mb = sum(isinstance(b, MBBlock) for b in built)
    assert n_idle + n_mb == len(built)
    assert (n_mb, n_idle) == (num_mb, num_idle)
    # token by token: kind, side and shuffle of the built blocks follow the pattern
    for tokens, blocks in zip(net.pattern.stages, stages):
        assert len(tokens) == len(blocks)
        for tok, blk in zip(tokens, blocks):
            if tok == 'M':
                assert isinstance(blk, MBBlock)
            else:
                assert isinstance(blk, IdleBlock)
                assert blk.shuffle is (tok == 'S')
                assert blk.side == ('R' if tok in 'IS' else tok)


def test_features_end_in_pooling_and_width():
    net = hcnet.get_model('hc_effb0_m11_i5')
    feat = net.features(rand((1, 3, 64, 64)))
    assert feat.shape == (1, 1280, 1, 1)
    net = hcnet.get_model('hc_m10_i5')
    assert net.features(rand((1, 3, 64, 64))).shape == (1, 1280, 1, 1)


def test_explicit_pattern_and_idle_side():
    pat = 'M | M L | M M M | M M I I | M S | M I M'
    net = hcnet.hc_net('mobilenetv3_large', pattern=pat, idle_side='L', classes=7)
    blocks = [b for stage in _stage_blocks(net) for b in stage]
    idle = [(b.side, b.shuffle) for b in blocks if isinstance(b, IdleBlock)]
    assert idle == [('L', False), ('L', False), ('L', False), ('L', True), ('L', False)]
    assert net(rand((1, 3, 32, 32))).shape == (1, 7)
    assert str(net.pattern) == pat


def test_efficientnet_drop_connect_reaches_blocks():
    net = hcnet.get_model('hc_effb0_m11_i5')
    blocks = [b for stage in _stage_blocks(net) for b in stage]
    n = len(blocks)
    for i, blk in enumerate(blocks):
        mb = blk.active if isinstance(blk, IdleBlock) else blk
        if mb.use_residual and i > 0:
            assert mb.drop is not None
            assert mb.drop._rate == pytest.approx(0.2 * i / n)
        else:
            assert mb.drop is None


def test_training_step_runs_and_gives_gradients():
    net = hcnet.get_model('hc_effb0_m11_i10', classes=5)
    net.hybridize()
    x = rand((4, 3, 32, 32), seed=5)
    label = mx.nd.array([0, 1, 2, 3])
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    with autograd.record(train_mode=True):
        loss = loss_fn(net(x), label)
    loss.backward()
    assert np.isfinite(loss.asnumpy()).all()
    grads = [p.grad().asnumpy() for p in net.collect_params().values() if p.grad_req != 'null']
    assert grads and all(np.isfinite(g).all() for g in grads)
    assert sum(float(np.abs(g).sum()) > 0 for g in grads) > 0.9 * len(grads)


# --------------------------------------------------------------------------- norm_layer
class RecordingBN(nn.BatchNorm):
    instances = []

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        RecordingBN.instances.append(self)


@pytest.mark.parametrize('name', ['hc_m10_i10', 'hc_effb0_m11_i10', 'hc_m1_isb14'])
def test_norm_layer_reaches_every_batchnorm(name):
    RecordingBN.instances = []
    net = hcnet.get_model(name, norm_layer=RecordingBN, norm_kwargs={'momentum': 0.8})
    bns = [b for b in walk(net) if isinstance(b, nn.BatchNorm)]
    assert bns and all(type(b) is RecordingBN for b in bns)
    assert len(bns) == len(RecordingBN.instances) > 0
    graph = json.loads(net(mx.sym.var('data')).tojson())
    n_sym_bn = sum(node['op'] == 'BatchNorm' for node in graph['nodes'])
    assert n_sym_bn == len(bns)
    assert all(b._kwargs['momentum'] == 0.8 for b in bns)
    # and the network still runs with it
    net.hybridize()
    assert net(rand((1, 3, 32, 32))).shape == (1, 1000)


def test_default_norm_layer_is_plain_batchnorm():
    net = hcnet.get_model('hc_m10_i5')
    bns = [b for b in walk(net) if isinstance(b, nn.BatchNorm)]
    assert bns and all(b._kwargs['momentum'] == 0.9 for b in bns)
