"""Deployment export: symbol + params and ONNX reproduce the Gluon outputs."""
import json
import os
import warnings

import mxnet as mx
import numpy as np
import pytest

import hcnet
from hcnet.commands import export as export_model
from hcnet.commands import publish as publish_model
from hcnet.deploy.onnx import export_onnx
from hcnet.train.checkpoint import save_checkpoint
from hcnet.store import clear_index_cache
from hcnet.nn.blocks import channel_shuffle

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4




@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mxnet_home'))
    monkeypatch.delenv('HCNET_REPO_URL', raising=False)
    clear_index_cache()
    yield
    clear_index_cache()


def _x(batch=2, size=32, seed=1):
    return mx.nd.array(np.random.RandomState(seed).randn(batch, 3, size, size).astype('float32'))


def _trained_like(net, seed=0):
    """Perturb every parameter (BN statistics included) the way training would."""
    net(_x())
    rng = np.random.RandomState(seed)
    for name, p in sorted(net.collect_params().items()):
        v = p.data().asnumpy()
        if name.endswith(('running_var', 'gamma')):
            v = rng.uniform(0.8, 1.2, v.shape)
        elif name.endswith(('running_mean', 'beta', 'bias')):
            v = rng.uniform(-0.1, 0.1, v.shape)
        else:
            v = v * rng.uniform(0.8, 1.2, v.shape)
        p.set_data(mx.nd.array(v))
    return net


def _close(got, expect):
    scale = max(1.0, float(np.abs(expect).max()))
    diff = float(np.abs(got - expect).max())
    assert diff <= TOL * scale, 'max |diff| %.3g > %.3g' % (diff, TOL * scale)


def _session(path):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def _check_files(prefix, expect_fn):
    """Independently reload STEM-symbol.json/-0000.params and STEM.onnx and compare."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        sym = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'],
                                           prefix + '-0000.params')
    session = _session(prefix + '.onnx')
    model = onnx.load(prefix + '.onnx')
    onnx.checker.check_model(model)
    assert [o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')] == [13]
    assert [i.name for i in model.graph.input] == ['data']
    assert [o.name for o in model.graph.output] == ['logits']
    for batch in (2, 3):                              # the batch dimension is dynamic
        x = _x(batch)
        expect = expect_fn(x)
        _close(sym(x).asnumpy(), expect)
        _close(session.run(None, {'data': x.asnumpy()})[0], expect)
    return model


# IdleBlock networks: slice_axis, concat + reshape_like (concat_channels), hard_sigmoid (SE
# gates, h-swish), L/R sides, the reduction variant (AvgPool2D count_include_pad=False), the
# ISB channel shuffle (reshape -4/-2, swapaxes), EfficientNet's swish / sigmoid.
@pytest.mark.parametrize('name', ['hc_m10_i10', 'hc_m10_i10_lr', 'hc_m1_isb14', 'hc_effb0_m11_i5'])
def test_idleblock_networks_export_and_match(name, tmp_path):
    net = _trained_like(hcnet.get_model(name, classes=10))
    report = export_model.export(net, name, str(tmp_path), input_size=32)
    model = _check_files(str(tmp_path / name), lambda x: net(x).asnumpy())
    ops = {n.op_type for n in model.graph.node}
    assert {'Slice', 'Concat', 'Reshape', 'Conv', 'BatchNormalization'} <= ops
    assert ('Sigmoid' if 'effb0' in name else 'HardSigmoid') in ops
    if 'isb' in name:
        assert 'AveragePool' in ops and 'Transpose' in ops
    assert report['checks']['symbol_max_rel_diff'] <= TOL
    assert report['checks']['onnx_max_rel_diff'] <= TOL
    assert report['checks']['onnx'].startswith('onnxruntime')
    with open(str(tmp_path / (name + '.json'))) as f:
        assert json.load(f)['files']['onnx'] == name + '.onnx'


class _Lambda(mx.gluon.HybridBlock):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def hybrid_forward(self, F, x):
        return self.fn(F, x)


def _export_block(fn, tmp_path, shape, fallback):
    block = _Lambda(fn)
    block.initialize()
    block.hybridize()
    x = mx.nd.array(np.random.RandomState(0).randn(*shape).astype('float32'))
    expect = block(x).asnumpy()
    prefix = str(tmp_path / 'block')
    block.export(prefix)
    path = prefix + '.onnx'
    if fallback:
        export_onnx(prefix + '-symbol.json', prefix + '-0000.params', path, shape)
    else:
        mx.onnx.export_model(prefix + '-symbol.json', prefix + '-0000.params', [shape],
                             [np.float32], path)
    np.testing.assert_array_equal(_session(path).run(None, {'data': x.asnumpy()})[0], expect)


def test_mxnet_exporter_cannot_translate_channel_shuffle(tmp_path):
    """What the fallback is for: MXNet 1.9.1 rejects reshape code -4 (e.g. GluonCV ShuffleNets)."""
    with pytest.raises(AttributeError, match='Reshape'):
        _export_block(lambda F, x: _old_style_shuffle(F, x, 2), tmp_path, (2, 8, 3, 5), False)
    _export_block(lambda F, x: _old_style_shuffle(F, x, 2), tmp_path, (2, 8, 3, 5), True)


def _old_style_shuffle(F, x, groups):
    """A channel shuffle written with Reshape codes -4/-3/-2 (as GluonCV's ShuffleNets)."""
    x = F.reshape(x, shape=(0, -4, groups, -1, -2))
    x = F.swapaxes(x, 1, 2)
    return F.reshape(x, shape=(0, -3, -2))


def test_hcnet_channel_shuffle_equals_the_coded_one_and_exports_without_fallback(tmp_path):
    x = mx.nd.array(np.random.RandomState(0).randn(2, 12, 3, 5).astype('float32'))
    np.testing.assert_array_equal(channel_shuffle(mx.nd, x, 2, 12).asnumpy(),
                                  _old_style_shuffle(mx.nd, x, 2).asnumpy())
    _export_block(lambda F, x: channel_shuffle(F, x, 2, 12), tmp_path, (2, 12, 3, 5), False)


@pytest.mark.parametrize('shape', [(0, -4, 2, -1, -2), (0, -4, -1, 4, -2), (0, -3, -2),
                                   (0, 0, -3), (-3, -2), (-4, 1, -1, -3, 0), (0, 2, -1, 0)])
def test_reshape_code_fallback(shape, tmp_path):
    _export_block(lambda F, x: F.reshape(x, shape=shape), tmp_path, (2, 8, 3, 5), True)


# --------------------------------------------------------------------------------------
# the command line

def _checkpoint(path, name='hc_m10_i5', classes=10):
    net = _trained_like(hcnet.get_model(name, classes=classes), seed=3)
    config = {'model': {'name': name, 'classes': classes, 'kwargs': {}},
              'data': {'dataset': 'synthetic', 'input_size': 32,
                       'mean': [0.5, 0.5, 0.5], 'std': [0.25, 0.25, 0.25]}}
    save_checkpoint(path, net, None, {'epoch': 1, 'model': name, 'classes': classes,
                                      'top1': 50.0, 'config': config})
    return net


def test_cli_from_checkpoint(tmp_path, capsys):
    ckpt = str(tmp_path / 'best.ckpt')
    net = _checkpoint(ckpt)
    out = str(tmp_path / 'out')
    assert export_model.main(['--checkpoint', ckpt, '--out', out]) == 0
    assert 'onnxruntime' in capsys.readouterr().out
    assert sorted(os.listdir(out)) == sorted(['hc_m10_i5-symbol.json', 'hc_m10_i5-0000.params',
                                              'hc_m10_i5.onnx', 'hc_m10_i5.json'])
    with open(os.path.join(out, 'hc_m10_i5.json')) as f:
        report = json.load(f)
    assert report['input_shape'] == [None, 3, 32, 32]           # the training config's size
    assert report['mean'] == [0.5, 0.5, 0.5] and report['classes'] == 10
    assert report['weights']['source'] == 'checkpoint'
    _check_files(os.path.join(out, 'hc_m10_i5'), lambda x: net(x).asnumpy())


def test_cli_from_name_with_published_and_local_weights(tmp_path, monkeypatch):
    ckpt = str(tmp_path / 'best.ckpt')
    net = _checkpoint(ckpt)
    entry = publish_model.publish(ckpt, str(tmp_path / 'store'))
    monkeypatch.setenv('HCNET_REPO_URL', 'file://' + str(tmp_path / 'store'))
    out = str(tmp_path / 'out')
    assert export_model.main(['hc_m10_i5', '--out', out, '--input-size', '40']) == 0
    with open(os.path.join(out, 'hc_m10_i5.json')) as f:
        report = json.load(f)
    assert report['weights']['sha1'] == entry['sha1'] and report['classes'] == 10
    assert report['input_shape'] == [None, 3, 40, 40]
    prefix = os.path.join(out, 'hc_m10_i5')
    session = _session(prefix + '.onnx')
    x = _x(2, 40)
    _close(session.run(None, {'data': x.asnumpy()})[0], net(x).asnumpy())
    # a local .params file, another stem
    params = str(tmp_path / 'w.params')
    net.save_parameters(params)
    assert export_model.main(['hc_m10_i5', '--pretrained', params, '--classes', '10', '--out',
                              out, '--stem', 'local', '--input-size', '32', '--no-onnx']) == 0
    assert not os.path.exists(os.path.join(out, 'local.onnx'))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        sym = mx.gluon.SymbolBlock.imports(os.path.join(out, 'local-symbol.json'), ['data'],
                                           os.path.join(out, 'local-0000.params'))
    _close(sym(_x()).asnumpy(), net(_x()).asnumpy())


def test_cli_bad_input_exits_2(tmp_path, capsys):
    out = str(tmp_path / 'out')
    assert export_model.main(['hc_nope', '--out', out]) == 2
    assert 'hc_nope' in capsys.readouterr().err
    assert export_model.main(['--checkpoint', str(tmp_path / 'missing.ckpt'), '--out', out]) == 2
    assert 'missing.ckpt' in capsys.readouterr().err
    assert export_model.main(['hc_m10_i10', '--out', out]) == 2      # nothing published
    err = capsys.readouterr().err
    assert 'no published weights' in err and err.count('\n') == 1
    with pytest.raises(SystemExit) as exit_:
        export_model.main(['hc_m10_i10', '--checkpoint', 'x.ckpt', '--out', out])
    assert exit_.value.code == 2
    assert not os.path.exists(out)


def test_cli_failed_check_exits_1(tmp_path, capsys):
    code = export_model.main(['hc_m10_i5', '--pretrained', 'random', '--classes', '10',
                              '--input-size', '32', '--out', str(tmp_path), '--tolerance', '-1'])
    assert code == 1 and 'differ' in capsys.readouterr().err


@pytest.mark.parametrize('name', ['hc_m10_i10', 'hc_effb0_m7_i9'])
def test_fast_export_is_the_deploy_graph_and_matches(name, tmp_path):
    net = _trained_like(hcnet.get_model(name, classes=10))
    report = export_model.export(net, name, str(tmp_path), input_size=32, fast=True)
    model = _check_files(str(tmp_path / name), lambda x: net(x).asnumpy())
    ops = {n.op_type for n in model.graph.node}
    assert 'BatchNormalization' not in ops                   # folded into the convolutions
    if name == 'hc_effb0_m7_i9':                             # runs begin after reductions:
        assert not ops & {'Slice', 'Split'}                  # the idle halves never move
    assert report['graph'].startswith('hcnet.deploy')
    assert report['checks']['onnx_max_rel_diff'] <= TOL
