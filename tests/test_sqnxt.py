"""SqueezeNext: the slides' parameter counts, the authors' prototxts, forward passes."""
import mxnet as mx
import numpy as np
import pytest

import hcnet
from hcnet.models.sqnxt import SQNXT_MODELS, SqnxtBlock, SqueezeNext
from conftest import rand, randomize, walk

#: the slides' SqueezeNext tables: params (M)
SLIDES_PARAMS = {'sqnxt23_w1': 0.72, 'sqnxt23v5_w1': 0.94, 'sqnxt23_w3d2': 1.4,
                 'sqnxt23_w2': 2.4, 'sqnxt23v5_w2': 3.23}

#: counted from github.com/amirgholami/SqueezeNext */train_val.prototxt (conv weights +
#: BatchNorm/Scale gamma and beta; no biases): params, MACs at 227x227, MACs at 224x224
PROTOTXT = {'sqnxt23_w1': (717280, 277999808, 268976832),
            'sqnxt23v5_w1': (930016, 224916480, 222046464),
            'sqnxt23_w2': (2361728, 742070464, 719066816),
            'sqnxt23v5_w2': (3222912, 702592000, 697960192)}


def _net(name):
    return SqueezeNext(*SQNXT_MODELS[name])          # uninitialised: counting only


@pytest.mark.parametrize('name', sorted(SLIDES_PARAMS))
def test_params_within_2_percent_of_the_slides(name):
    params = hcnet.count(_net(name), 224).params / 1e6
    assert abs(params - SLIDES_PARAMS[name]) / SLIDES_PARAMS[name] < 0.02, params


@pytest.mark.parametrize('name', sorted(PROTOTXT))
def test_equal_to_the_authors_prototxt(name):
    params, macs227, macs224 = PROTOTXT[name]
    net = _net(name)
    c227, c224 = hcnet.count(net, 227), hcnet.count(net, 224)
    assert c227.params == c224.params == params
    assert (c227.madds, c224.madds) == (macs227, macs224)


def test_structure():
    v1, v5 = _net('sqnxt23_w1'), _net('sqnxt23v5_w1')
    blocks1 = [b for b in walk(v1) if isinstance(b, SqnxtBlock)]
    blocks5 = [b for b in walk(v5) if isinstance(b, SqnxtBlock)]
    assert len(blocks1) == len(blocks5) == 21
    assert [b.entry for b in blocks1].count('project') == 4
    assert [b.entry for b in blocks5].count('pre') == 4
    cx = hcnet.count(v5, 224)
    assert [k for k in cx.blocks if k.startswith('stage3')] == ['stage3_block%d' % b
                                                                for b in range(1, 15)]
    stem = {n: p.shape for n, p in v1.collect_params().items() if '_stem_' in n and
            n.endswith('weight')}
    assert list(stem.values()) == [(64, 3, 7, 7)]
    stem5 = [p.shape for n, p in v5.collect_params().items() if '_stem_' in n and
             n.endswith('weight')]
    assert stem5 == [(64, 3, 5, 5)]
    # widths scale, stem and head do not
    w2 = _net('sqnxt23_w2')
    head = [p.shape for n, p in w2.collect_params().items() if '_head_' in n and
            n.endswith('weight')]
    assert head == [(128, 512, 1, 1)]


def test_registered_and_forward():
    assert set(SQNXT_MODELS) <= set(hcnet.list_models())
    net = hcnet.get_model('sqnxt23v5_w1', classes=10)
    assert net.classes == 10 and net.name_in_zoo == 'sqnxt23v5_w1'
    randomize(net, seed=1)
    x = rand((2, 3, 224, 224), seed=2)
    imp = net(x).asnumpy()
    net.hybridize()
    hyb = net(x).asnumpy()
    assert imp.shape == (2, 10) and np.isfinite(imp).all() and np.abs(imp).max() > 0
    np.testing.assert_allclose(hyb, imp, rtol=1e-4, atol=1e-4 * np.abs(imp).max())
    assert net(rand((1, 3, 227, 227))).shape == (1, 10)


def test_default_is_imagenet_1000():
    net = hcnet.get_model('sqnxt23_w1')
    assert net.classes == 1000
    assert net(mx.nd.zeros((1, 3, 224, 224))).shape == (1, 1000)
