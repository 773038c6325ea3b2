"""Baselines: GluonCV names exist, configs build, quoted vs measured figures."""
import glob
import os

import gluoncv
import mxnet as mx
import pytest
from gluoncv.model_zoo.model_zoo import get_model_list

import hcnet
from hcnet.train.config import CONFIG_DIR, load_config
from hcnet.paper.baselines import (BASELINES, GLUONCV_BASELINES, _shufflenet_v2,
                                       baseline_configs, measure_baseline, render_baselines)

CONFIGS = sorted(glob.glob(os.path.join(CONFIG_DIR, 'baselines', '*.yaml')))


def _row(model):
    return next(b for b in BASELINES if b.model == model)


def test_gluoncv_names_exist_and_are_not_hcnet_models():
    names = set(get_model_list())
    for name in GLUONCV_BASELINES:
        assert name in names, name
        assert not hcnet.model_zoo.is_model(name), name
    # the widths GluonCV has no name for
    assert 'mobilenetv2_1.4' not in names and 'shufflenet_v2_2.0' not in names


def test_one_config_per_buildable_baseline():
    assert sorted(os.path.basename(p)[:-5] for p in CONFIGS) == sorted(baseline_configs())


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: os.path.basename(p))
def test_config_loads_and_builds(path):
    cfg = load_config(path)
    name = cfg['model.name']
    row = _row(name)
    assert cfg['paper.recipe'] == 'single-node'
    assert cfg['train.lr'] == 2.6 and cfg['train.epochs'] == 360     # the HC networks' recipe
    assert cfg['paper.table'] == row.table
    assert cfg['paper.row'] == row.label
    assert cfg['paper.top1'] == (row.top1 if row.table else None)
    kwargs = dict(cfg['model.kwargs'], classes=cfg['model.classes'])
    if hcnet.model_zoo.is_model(name):
        net = hcnet.get_model(name, **kwargs)
    else:
        net = gluoncv.model_zoo.get_model(name, **kwargs)
    size = cfg['data.input_size']          # the network the config names, at its input size
    out = net(mx.sym.var('data'))
    out = out[0] if isinstance(out, (list, tuple)) else out     # NASNet: (logits, aux)
    _, shapes, _ = out.infer_shape(data=(1, 3, size, size))
    assert shapes[0] == (1, cfg['model.classes'])


@pytest.mark.parametrize('model,madds_tol,params_tol', [
    ('squeezenet1.0', 0.01, 0.001), ('mobilenet1.0', 0.01, 0.01), ('mobilenet0.75', 0.01, 0.01),
    ('mobilenetv2_1.0', 0.01, 0.04), ('shufflenet_v2', 0.01, 0.01),
    ('shufflenet_v2_2.0', 0.015, 0.01), ('sqnxt23_w1', 0.015, 0.02),
    ('sqnxt23v5_w1', 0.015, 0.02), ('sqnxt23_w2', 0.015, 0.02), ('sqnxt23v5_w2', 0.015, 0.02),
    ('senet_154', 0.02, 0.01), ('resnext50_32x4d', 0.01, 0.01)])
def test_measured_close_to_quoted(model, madds_tol, params_tol):
    row = _row(model)
    madds, params = measure_baseline(row)
    assert abs(madds - row.madds) / row.madds < madds_tol, madds
    assert abs(params - row.params) / row.params < params_tol, params


def test_shufflenet_v2_builder_reproduces_gluoncv_at_1x():
    ours = hcnet.count(_shufflenet_v2(1), 224)
    ref = hcnet.count(gluoncv.model_zoo.get_model('shufflenet_v2'), 224)
    assert (ours.madds, ours.params) == (ref.madds, ref.params)


def test_every_table_2_and_4_row_is_listed():
    t2 = [b.label for b in BASELINES if b.table == 2]
    t4 = [b.label for b in BASELINES if b.table == 4]
    assert len(t2) == 16 and len(t4) == 9        # all comparison rows (EfficientNet-B0 in 2)
    assert len(set(t2 + t4)) == len(t2 + t4)


def test_render_baselines():
    md = render_baselines()
    for b in BASELINES:
        assert b.network in md
    assert 'sqnxt23v5_w1' in md and '0.930' in md
    assert 'Not implemented here' in md
