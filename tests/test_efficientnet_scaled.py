"""EfficientNet-B1..B3: B0 compound-scaled (hcnet.arch.scale_spec), against the reference
implementation's architecture and parameter counts; their per-model defaults, configs,
composition policies and a training step through scripts/train_imagenet.py."""
import glob
import json
import math
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import hcnet
from hcnet.arch import POLICIES, alternating_adjacent, compose, get_base_spec, scale_spec
from hcnet.model_zoo import HC_RECIPES
from hcnet.paper.reference import PAPER_ROWS
from hcnet.train.config import CONFIG_DIR, load_config
from hcnet.train.data import eval_resize_size
from conftest import rand

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'scripts', 'train_imagenet.py')

#: zoo name -> base, and timm's ``efficientnet_bN`` (1000 classes): trainable parameters,
#: stem / per-stage output widths / head, blocks per stage, resolution, dropout
REFERENCE = {
    'hc_effb1_m23_i0': ('efficientnet_b1', 7794184, 32, (16, 24, 40, 80, 112, 192, 320), 1280,
                        (2, 3, 3, 4, 4, 5, 2), 240, 0.2),
    'hc_effb2_m23_i0': ('efficientnet_b2', 9109994, 32, (16, 24, 48, 88, 120, 208, 352), 1408,
                        (2, 3, 3, 4, 4, 5, 2), 260, 0.3),
    'hc_effb3_m26_i0': ('efficientnet_b3', 12233232, 40, (24, 32, 48, 96, 136, 232, 384), 1536,
                        (2, 3, 3, 5, 5, 6, 2), 300, 0.3),
}
NAMES = sorted(REFERENCE)


def test_scaling_b0_by_one_gives_b0_back():
    b0 = get_base_spec('efficientnet_b0')
    assert scale_spec(b0) == b0
    # the scaled specs' Adjacent derivation, applied to B0, is B0's placement (paper-tables.md)
    assert alternating_adjacent(b0, {s for s, _ in b0.adjacent}) == b0.adjacent
    mb = get_base_spec('mobilenetv3_large')       # same depth: the base's placement kept
    assert scale_spec(mb, width=0.75).adjacent == mb.adjacent


@pytest.mark.parametrize('name', NAMES)
def test_architecture_is_the_reference_one(name):
    base, _, stem, widths, head, depths, size, dropout = REFERENCE[name]
    spec = get_base_spec(base)
    b0 = get_base_spec('efficientnet_b0')
    assert spec.stem_channels == stem and spec.head_channels == head
    assert tuple(rows[-1].out for rows in spec.stages) == widths
    assert tuple(len(rows) for rows in spec.stages) == depths
    assert (spec.resolution, spec.dropout, spec.drop_connect) == (size, dropout, b0.drop_connect)
    for rows, b0_rows in zip(spec.stages, b0.stages):
        # kernel, expand ratio, SE and activation from B0; only the first block strides
        assert {(r.kernel, r.expand_ratio, r.se, r.act) for r in rows} == \
            {(r.kernel, r.expand_ratio, r.se, r.act) for r in b0_rows}
        assert rows[0].stride == b0_rows[0].stride and all(r.stride == 1 for r in rows[1:])
    # the name's M: every block of the None network is an MBBlock
    assert int(name.split('_m')[1].split('_')[0]) == sum(depths)


@pytest.mark.parametrize('name', NAMES)
def test_parameter_count_within_half_a_percent_of_timm(name):
    base, params, *_ = REFERENCE[name]
    net = hcnet.get_model(name)
    ours = hcnet.count(net, hcnet.get_model_cfg(name).input_size).params
    assert abs(ours - params) / params < 0.005, (name, ours, params)
    assert net.base.name == base


@pytest.mark.parametrize('name', NAMES)
def test_per_model_defaults_are_the_resolution(name):
    size = REFERENCE[name][6]
    cfg = hcnet.get_model_cfg(name)
    assert cfg.input_size == size and cfg.classes == 1000
    assert eval_resize_size(size, cfg.crop_ratio) == size + 32   # the reference's crop padding
    net = hcnet.get_model(name)
    assert net.default_cfg == cfg
    dropout = [b for b in net.output._children.values() if isinstance(b, mx.gluon.nn.Dropout)]
    assert [d._rate for d in dropout] == [REFERENCE[name][7]]
    # B0's networks keep theirs
    assert hcnet.get_model_cfg('hc_effb0_m16_i0') == hcnet.models.HC_CFG


@pytest.mark.parametrize('name', NAMES)
def test_builds_at_its_resolution_and_hybridizes(name):
    size = hcnet.get_model_cfg(name).input_size
    net = hcnet.get_model(name, classes=10)
    x = rand((1, 3, size, size), seed=5)
    imp = net(x).asnumpy()
    net.hybridize()
    hyb = net(x).asnumpy()
    assert imp.shape == hyb.shape == (1, 10)
    scale = float(np.abs(imp).max())
    assert scale > 0 and np.isfinite(hyb).all()
    np.testing.assert_allclose(hyb, imp, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize('policy', POLICIES)
@pytest.mark.parametrize('base', ['efficientnet_b1', 'efficientnet_b3'])
def test_every_policy_composes_on_the_scaled_bases(base, policy):
    kwargs = dict(insert='I', count=1, at='all') if policy == 'deeper' else {}
    net = hcnet.hc_net(base, policy=policy, classes=5, **kwargs)
    pattern = compose(base, policy, **kwargs)
    assert net.pattern == pattern
    assert (len(net.block_specs) == pattern.num_mb + pattern.num_idle
            == sum(len(s) for s in pattern.stages))
    net.hybridize()
    assert net(rand((2, 3, 64, 64), seed=6)).shape == (2, 5)


@pytest.mark.parametrize('base', ['efficientnet_b1', 'efficientnet_b2', 'efficientnet_b3'])
def test_adjacent_placement_follows_b0s(base):
    """B0's Adjacent stages (40..192) alternate M I from each stage's first block; the
    other stages stay M. Every IdleBlock's input block is an MBBlock (the paper's rule)."""
    b0, spec = get_base_spec('efficientnet_b0'), get_base_spec(base)
    stages = {s for s, _ in b0.adjacent}
    pattern = compose(spec, 'adjacent')
    flat = [t for stage in pattern.stages for t in stage]
    assert flat[0] == 'M' and all(prev == 'M' for prev, t in zip(flat, flat[1:]) if t == 'I')
    for s, tokens in enumerate(pattern.stages):
        expect = [('I' if s in stages and b % 2 else 'M') for b in range(len(tokens))]
        assert list(tokens) == expect, (s, tokens)
    assert pattern.num_idle > len(b0.adjacent)        # the extra depth gets its share


def test_hc_hybrid_on_b1_builds_and_counts():
    net = hcnet.hc_net('efficientnet_b1', policy='adjacent+1')
    none = hcnet.get_model('hc_effb1_m23_i0')
    idle, full = hcnet.count(net, 240), hcnet.count(none, 240)
    assert net.pattern.num_idle == 2 * compose('efficientnet_b1', 'adjacent').num_idle
    assert net.default_cfg.input_size == 240
    assert 0 < idle.params < full.params * 1.5 and idle.madds > 0


# --------------------------------------------------------------------------- paper rows
def test_table_4_quotes_b1_b3_in_the_standard_convention():
    rows = {r.model: r for r in PAPER_ROWS if r.table == 4 and r.model in REFERENCE}
    assert sorted(rows) == NAMES
    for name, row in rows.items():
        assert row.convention == 'standard' and row.input_size == REFERENCE[name][6]
        assert row.label.startswith('EfficientNet-B') and row.top1 is not None


def test_tables_compare_b1_b3_in_both_conventions():
    from hcnet.paper.reproduce import reproduce
    from hcnet.paper.tables import render_table
    results = reproduce([r for r in PAPER_ROWS if r.model in REFERENCE])
    for r in results:
        net = hcnet.get_model(r.row.model)
        cx = hcnet.count(net, r.row.input_size)
        assert (r.std_madds, r.std_params) == cx.standard()
        assert (r.raw_madds, r.raw_params) == cx.paper_for(net.base)
        assert (r.madds, r.params) == (r.std_madds, r.std_params)   # compared as quoted
        assert not r.anchored and r.failures() == []
    md = render_table(4, results)
    for r in results:
        line = next(l for l in md.splitlines() if '`%s`' % r.row.model in l)
        for value in ('%.2f' % r.std_madds, '%.2f' % r.raw_madds, '%.3f' % r.std_params,
                      '%.3f' % r.raw_params, '%.2f' % r.row.madds):
            assert value in line, (value, line)


# --------------------------------------------------------------------------- configs
_CONFIGS = sorted(p for p in glob.glob(os.path.join(CONFIG_DIR, '**', '*.yaml'), recursive=True)
                  if '_base' not in p)


def test_configs_name_a_paper_row_of_their_network_at_its_input_size():
    """Every config naming a row of the paper's Tables 1-7 builds that row's network at
    that row's resolution (the 320 px row of Table 4 included)."""
    seen = set()
    for path in _CONFIGS:
        cfg = load_config(path)
        rows = [r for r in PAPER_ROWS
                if r.table == cfg['paper.table'] and r.label == cfg['paper.row']]
        if not rows or cfg['model.name'] not in HC_RECIPES:
            continue                   # a baseline's or IR-Net's own table
        assert len(rows) == 1, path
        row = rows[0]
        assert cfg['model.name'] == row.model, path
        assert cfg['data.input_size'] == row.input_size, path
        seen.add((row.table, row.label))
    assert (4, 'HC(M=16, I=28) [□]') in seen
    assert {(4, 'EfficientNet-B%d [24]' % k) for k in (1, 2, 3)} <= seen


@pytest.mark.parametrize('name', NAMES)
def test_configs_at_the_resolution_with_the_reference_crop(name):
    for suffix, top1 in (('', None), ('_dist', next(
            r.top1 for r in PAPER_ROWS if r.model == name and r.table == 4))):
        cfg = load_config(name + suffix)
        model = hcnet.get_model_cfg(name)
        assert cfg['data.input_size'] == model.input_size
        assert eval_resize_size(cfg['data.input_size'], cfg['data.crop_ratio']) == \
            eval_resize_size(model.input_size, model.crop_ratio)
        assert cfg['paper.top1'] == top1


@pytest.mark.parametrize('config,quoted', [('mobilenet1.0_192', 418), ('mobilenet1.0_160', 290),
                                           ('mobilenet1.0_128', 186)])
def test_mobilenet_v1_resolution_configs_measure_the_slides_figures(config, quoted):
    from hcnet.paper.baselines import BASELINES, measure_baseline
    row = next(b for b in BASELINES if b.config_name == config)
    cfg = load_config(config)
    assert cfg['model.name'] == row.model == 'mobilenet1.0'
    assert cfg['data.input_size'] == row.input_size and row.madds == quoted
    madds, _ = measure_baseline(row)
    assert abs(madds - quoted) / quoted < 0.01, madds


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize('name', NAMES)
def test_trains_a_step_through_the_script_at_its_resolution(name, tmp_path):
    out = str(tmp_path / 'run')
    proc = subprocess.run(
        [sys.executable, TRAIN, '--config', name, 'data.dataset=synthetic',
         'train.epochs=1', 'train.steps_per_epoch=1', 'train.batch_size=2',
         'data.synthetic_samples=2', 'data.val_samples=2', 'train.dtype=float32',
         'train.gpus=[]', 'data.num_workers=0', 'output_dir=%s' % out],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with open(os.path.join(out, 'metrics.jsonl')) as f:
        row = json.loads(f.readline())
    assert row['epoch'] == 1 and math.isfinite(row['train_loss'])
    with open(os.path.join(out, 'config.yaml')) as f:
        text = f.read()
    assert 'input_size: %d' % REFERENCE[name][6] in text
