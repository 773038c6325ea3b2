"""Model zoo: registry, GluonCV bridge, pretrained handling."""
import warnings
from importlib import metadata

import gluoncv
import numpy as np
import pytest

import hcnet
from hcnet.model_zoo import PretrainedError
from hcnet.model_zoo import HC_RECIPES, gluoncv_bridge
from conftest import rand, randomize


def test_list_models_is_exactly_the_recipes():
    from hcnet.model_zoo.baselines import GLUONCV_WIDTHS, IRNET_MODELS, SQNXT_MODELS
    names = hcnet.list_models()
    assert len(names) == len(set(names))
    assert set(names) == (set(HC_RECIPES) | set(IRNET_MODELS) | set(SQNXT_MODELS)
                          | set(GLUONCV_WIDTHS))
    assert len(hcnet.list_models('hc_')) == 28 and set(hcnet.list_models('hc_')) == set(HC_RECIPES)
    assert hcnet.list_models('effb0') == [n for n in names if 'effb0' in n]
    assert len(hcnet.list_models('effb0')) == 9


def test_unknown_name_lists_models():
    with pytest.raises(ValueError) as err:
        hcnet.get_model('hc_m99_i99')
    msg = str(err.value)
    assert 'hc_m99_i99' in msg
    for name in HC_RECIPES:
        assert name in msg


def test_get_model_is_case_insensitive_and_passes_kwargs():
    net = hcnet.get_model('HC_M10_I5', classes=3, dropout=0.0)
    assert isinstance(net, hcnet.HCNet)
    assert str(net.pattern) == str(hcnet.arch.compose('mobilenetv3_large', 'adjacent'))
    assert net(rand((1, 3, 32, 32))).shape == (1, 3)
    assert net.name_in_zoo == 'hc_m10_i5'


def test_register_model_rejects_duplicates():
    def hc_m10_i10(**kwargs):          # same name, different constructor
        return None
    with pytest.raises(ValueError):
        hcnet.register_model(hc_m10_i10)


def test_gluoncv_bridge_pinned_version():
    assert metadata.version('gluoncv') == gluoncv_bridge.GLUONCV_VERSION
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert gluoncv_bridge.register_with_gluoncv() is True


def test_gluoncv_get_model_returns_hcnet():
    net = gluoncv.model_zoo.get_model('hc_m10_i10')
    ref = hcnet.get_model('hc_m10_i10')
    assert isinstance(net, hcnet.HCNet)
    assert net.pattern == ref.pattern
    assert str(net.pattern) == 'M | M I I | M M M | M M I I I I | M I I | M I I M'
    assert gluoncv.model_zoo.get_model('hc_effb0_m11_i5', classes=10)(
        rand((1, 3, 32, 32))).shape == (1, 10)
    from gluoncv.model_zoo import model_zoo
    assert set(HC_RECIPES) <= set(model_zoo._models)


@pytest.mark.parametrize('name', ['hc_m10_i10', 'hc_effb0_m11_i5'])
def test_pretrained_true_raises_naming_the_model(name):
    with pytest.raises(PretrainedError) as err:
        hcnet.get_model(name, pretrained=True)
    assert name in str(err.value)


def test_pretrained_missing_file_raises(tmp_path):
    missing = str(tmp_path / 'nope.params')
    with pytest.raises(PretrainedError) as err:
        hcnet.get_model('hc_m10_i5', pretrained=missing)
    assert 'nope.params' in str(err.value)


@pytest.mark.parametrize('name', ['hc_m10_i10_lr', 'hc_effb0_m11_i5'])
def test_pretrained_path_loads_identical_weights(name, tmp_path):
    src = hcnet.get_model(name)
    randomize(src, seed=7)
    path = str(tmp_path / (name + '.params'))
    src.save_parameters(path)
    dst = hcnet.get_model(name, pretrained=path)
    fresh = hcnet.get_model(name)
    x = rand((2, 3, 32, 32), seed=8)
    expect = src(x).asnumpy()
    got = dst(x).asnumpy()
    assert np.isfinite(expect).all() and np.abs(expect).max() > 0
    assert np.array_equal(got, expect)
    assert not np.allclose(fresh(x).asnumpy(), expect)
    for (ks, ps), (kd, pd) in zip(sorted(src._collect_params_with_prefix().items()),
                                  sorted(dst._collect_params_with_prefix().items())):
        assert ks == kd
        assert np.array_equal(ps.data().asnumpy(), pd.data().asnumpy())
