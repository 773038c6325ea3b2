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


def _config_row(path):
    """The baseline row a config file under hcnet/configs/baselines/ is named after."""
    return next(b for b in BASELINES if b.config_name == os.path.basename(path)[:-5])


def test_gluoncv_names_exist_and_are_not_hcnet_models():
    names = set(get_model_list())
    for name in GLUONCV_BASELINES:
        assert name in names, name
        assert not hcnet.model_zoo.is_model(name), name
    # the widths GluonCV builds but has no name for are hcnet's names (reached through the
    # bridge), built from GluonCV's classes
    from gluoncv.model_zoo.model_zoo import _models
    for name, cls in (('mobilenetv2_1.4', gluoncv.model_zoo.mobilenet.MobileNetV2),
                      ('shufflenet_v2_2.0', gluoncv.model_zoo.shufflenet.ShuffleNetV2)):
        assert hcnet.model_zoo.is_model(name)
        assert _models[name] is hcnet.model_zoo.registry._MODELS[name]
        assert isinstance(hcnet.get_model(name), cls)


def test_one_config_per_buildable_baseline():
    assert sorted(os.path.basename(p)[:-5] for p in CONFIGS) == sorted(baseline_configs())


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: os.path.basename(p))
def test_config_loads_and_builds(path):
    cfg = load_config(path)
    name = cfg['model.name']
    row = _config_row(path)
    assert row.model == name
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
    if row.config_suffix:                  # a row at another resolution: the config's
        assert size == row.input_size
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
