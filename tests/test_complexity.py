"""Complexity: published figures, Eq. 3 savings, paper vs standard conventions,
and an independent analytic count of every zoo network."""
from fractions import Fraction

import pytest

import hcnet
from hcnet.arch import compose, get_base_spec
from hcnet.model_zoo import HC_RECIPES
from conftest import rand

MB, EFF = 'mobilenetv3_large', 'efficientnet_b0'


def _out(h, stride):
    """Spatial size after a 'same'-padded odd-kernel conv / 3x3 pool with ``stride``."""
    return (h - 1) // stride + 1


def _mb_cost(cin, exp, cout, k, stride, se, h):
    """(MAdds, trainable params, BN channels) of an MBBlock on an h x h input."""
    ho = _out(h, stride)
    madds = params = bn = 0
    if exp != cin:
        madds += cin * exp * h * h
        params += cin * exp
        bn += exp
    madds += exp * k * k * ho * ho
    params += exp * k * k
    bn += exp
    if se:
        madds += 2 * exp * se                   # 1x1 convs on the pooled vector
        params += exp * se + se + se * exp + exp
    madds += exp * cout * ho * ho
    params += exp * cout
    bn += cout
    return madds, params + 2 * bn, bn, ho


def analytic_count(net, size=224, alpha=0.5):
    """MAdds, trainable params and BN channels from the block specs alone."""
    base = net.base
    h = _out(size, 2)
    madds = base.stem_channels * 27 * h * h
    params = base.stem_channels * 27 + 2 * base.stem_channels
    bn = base.stem_channels
    blocks = {}
    for spec in net.block_specs:
        cin, cout = spec.in_channels, spec.out_channels
        if spec.kind == 'I':
            idle = int(round(cin * alpha))
            cin, cout = cin - idle, cout - idle
        m, p, b, h = _mb_cost(cin, spec.exp_channels, cout, spec.kernel, spec.stride,
                              spec.se_channels, h)
        madds, params, bn = madds + m, params + p, bn + b
        blocks[spec.name] = {'madds': m, 'params': p}
    last = net.block_specs[-1].out_channels
    madds += last * base.head_channels * h * h
    params += last * base.head_channels + 2 * base.head_channels
    bn += base.head_channels
    width = base.head_channels
    if base.pre_logits:
        madds += width * base.pre_logits
        params += width * base.pre_logits + base.pre_logits
        width = base.pre_logits
    madds += width * net.classes
    params += width * net.classes + net.classes
    return madds, params, bn, blocks


@pytest.fixture(scope='module')
def counted():
    cache = {}

    def get(name, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            net = hcnet.get_model(name, **kwargs)
            cache[key] = (net, hcnet.count(net))
        return cache[key]
    return get


# --------------------------------------------------------------------------- published figures
@pytest.mark.parametrize('name,madds_m,params_m', [
    ('hc_m15_i0', 216.6, 5.48),          # MobileNetV3-Large (torchvision / timm)
    ('hc_effb0_m16_i0', 385.8, 5.29),    # EfficientNet-B0 (timm)
])
def test_published_figures(name, madds_m, params_m, counted):
    _, c = counted(name)
    madds, params = c.standard()
    assert abs(madds - madds_m) / madds_m < 0.005
    assert abs(params - params_m) / params_m < 0.005


# --------------------------------------------------------------------------- analytic count
@pytest.mark.parametrize('name', list(HC_RECIPES))
def test_count_matches_analytic_formula(name, counted):
    net, c = counted(name)
    madds, params, bn, blocks = analytic_count(net)
    assert c.madds == madds
    assert c.params == params
    assert c.bn_stats == 2 * bn
    # per-block table (trainable params include BN gamma/beta)
    assert c.blocks == blocks


def test_count_other_input_size_and_classes(counted):
    net, c224 = counted('hc_m10_i5')
    c32 = hcnet.count(net, input_size=32)
    assert c32.madds == analytic_count(net, size=32)[0]
    assert c32.madds < c224.madds
    assert c32.params == c224.params
    assert hcnet.count(net, input_size=(32, 32)).madds == c32.madds
    # the classifier is the only difference between 1000 and 10 classes
    for name in ('hc_m10_i5', 'hc_effb0_m11_i5'):
        (_, big), (_, small) = counted(name), counted(name, classes=10)
        assert big.madds - small.madds == 990 * 1280
        assert big.params - small.params == 990 * (1280 + 1)


# --------------------------------------------------------------------------- Eq. 3
def _input_size(base, stage, block, size=224):
    """Spatial input size of (stage, block), 0-based, of the None network."""
    h = _out(size, 2)
    for s, rows in enumerate(base.stages):
        for b, row in enumerate(rows):
            if (s, b) == (stage, block):
                return h
            h = _out(h, row.stride)
    raise AssertionError('no such block')


def _replace(base, stage, block):
    tokens = [list(st) for st in compose(base, 'none').stages]
    tokens[stage][block] = 'I'
    return ' | '.join(' '.join(st) for st in tokens)


@pytest.mark.parametrize('base,stage,block', [
    (MB, 1, 1),      # 24: C=24, exp 72, 56x56, no SE (the paper's example width)
    (MB, 3, 1),      # 80: C=80, exp 200, 14x14, no SE
    (MB, 1, 0),      # 24 first row: stride 2, 16 -> 24 (reduction variant), no SE
    (EFF, 2, 1),     # 40: C=40, exp 240, 28x28, SE of width in/4 in MB and Idle alike
    (EFF, 5, 2),     # 192: C=192, exp 1152, 7x7
    (EFF, 3, 0),     # 80 first row: stride 2, 40 -> 80 (reduction variant)
])
def test_eq3_saving_of_one_idleblock(base, stage, block):
    spec = get_base_spec(base)
    row = spec.stages[stage][block]
    c_in = spec.stage_inputs()[stage] if block == 0 else spec.stages[stage][block - 1].out
    rc = row.exp if row.exp is not None else int(c_in * row.expand_ratio)
    hw = _input_size(spec, stage, block) ** 2
    s = row.stride
    alpha = Fraction(1, 2)
    # Eq. 3 in multiply-adds: alpha * rC * C * (HW + HW / s^2)
    expect = alpha * rc * c_in * (hw + Fraction(hw, s * s))
    assert expect.denominator == 1

    none = hcnet.hc_net(base)
    var = hcnet.hc_net(base, pattern=_replace(base, stage, block))
    assert var.pattern.num_idle == 1
    c0, c1 = hcnet.count(none), hcnet.count(var)
    assert c0.madds - c1.madds == int(expect)
    name = 'stage%d_block%d' % (stage + 1, block + 1)
    assert c0.blocks[name]['madds'] - c1.blocks[name]['madds'] == int(expect)
    for other in c0.blocks:
        if other != name:
            assert c0.blocks[other] == c1.blocks[other]
    # SE is the same module in both, so the SE MAdds do not change
    assert c0.se_madds == c1.se_madds


def test_first_block_of_mobilenetv3_saves_nothing():
    """The 16->16 block has no expand conv (exp == in): its IdleBlock gains one.

    MB: dw + 16x16 project; Idle: 8x16 expand + dw + 16x8 project -> same MAdds.
    """
    c0 = hcnet.count(hcnet.hc_net(MB))
    c1 = hcnet.count(hcnet.hc_net(MB, pattern=_replace(MB, 0, 0)))
    assert c0.madds == c1.madds
    # Idle: 8x16 expand + BN(16), 16x8 project + BN(8); MB: 16x16 project + BN(16)
    assert c1.params - c0.params == (128 + 2 * 16 + 128 + 2 * 8) - (256 + 2 * 16)


# --------------------------------------------------------------------------- conventions
def _independent_params(net):
    trainable = bn_stats = se_bias = gamma = 0
    for name, p in net.collect_params().items():
        n = p.data().size
        if name.endswith(('running_mean', 'running_var')):
            bn_stats += n
            assert p.grad_req == 'null'
            continue
        assert p.grad_req != 'null'
        trainable += n
        if name.endswith('gamma'):
            gamma += n
        if '_se_' in name and name.endswith('_bias'):
            se_bias += n
    return trainable, bn_stats, se_bias, gamma


@pytest.mark.parametrize('name', ['hc_m15_i0', 'hc_m10_i10', 'hc_effb0_m16_i0',
                                  'hc_effb0_m11_i10'])
def test_paper_and_standard_conventions(name, counted):
    net, c = counted(name)
    net(rand((1, 3, 32, 32)))                  # forward pass: all parameters materialised
    trainable, bn_stats, se_bias, bn_channels = _independent_params(net)
    assert bn_stats == 2 * bn_channels          # running mean + var per BN channel
    assert (c.params, c.bn_stats, c.se_bias) == (trainable, bn_stats, se_bias)
    # SE from the specs: biases se + exp per SE module, MAdds 2 * exp * se
    specs = [s for s in net.block_specs if s.se_channels]
    assert se_bias == sum(s.se_channels + s.exp_channels for s in specs) > 0
    assert c.se_madds == sum(2 * s.exp_channels * s.se_channels for s in specs)

    assert c.standard() == (c.madds / 1e6, trainable / 1e6)
    for se_madds in (True, False):
        for se_b in (True, False):
            madds, params = c.paper(se_madds=se_madds, se_bias=se_b)
            assert madds == pytest.approx((c.madds - (0 if se_madds else c.se_madds)) / 1e6)
            assert params == pytest.approx(
                (trainable + bn_stats - (0 if se_b else se_bias)) / 2 ** 20, rel=1e-12)
    paper_madds, paper_params = c.paper_for(net.base)
    if net.base.name == MB:    # MobileNetV3: SE MAdds out, SE biases in
        assert paper_madds == pytest.approx((c.madds - c.se_madds) / 1e6)
        assert paper_params == pytest.approx((trainable + bn_stats) / 2 ** 20)
    else:                      # EfficientNet: SE MAdds in, SE biases out
        assert paper_madds == pytest.approx(c.madds / 1e6)
        assert paper_params == pytest.approx((trainable + bn_stats - se_bias) / 2 ** 20)
