"""hcnet convert: timm / torchvision state dicts into store files, without torch.

Function equivalence: for each source, tests/data/convert_<source>.{json,npz} (written by
scripts/make_convert_fixtures.py with the real torch, timm and torchvision) hold a state
dict's keys in torch's order, the seed its weights were drawn from, its BatchNorm
statistics, a fixed input and the reference network's eval-mode logits in float64. The
weights are drawn again here (their sha256 must be the manifest's), written as a
.safetensors file, converted, loaded into the hcnet network, and its logits must match
the reference within 1e-4 relative.
"""
import collections
import hashlib
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import zipfile

import mxnet as mx
import numpy as np
import pytest

import hcnet
from hcnet.cli import run
from hcnet.convert import (ConvertError, ReadError, RestrictedUnpickler, SOURCES,
                           convert_params, get_source, read_state_dict)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')
FIXTURES = ['timm_mobilenetv3_large_100', 'timm_efficientnet_b0', 'timm_efficientnet_b1',
            'timm_efficientnet_b2', 'timm_efficientnet_b3',
            'torchvision_mobilenet_v3_large']
TOLERANCE = 1e-4


def _manifest(name):
    with open(os.path.join(DATA, 'convert_%s.json' % name)) as f:
        manifest = json.load(f)
    return manifest, np.load(os.path.join(DATA, 'convert_%s.npz' % name))


def _draw(tensors, seed):
    """The seeded tensors (as scripts/make_convert_fixtures.py draws them)."""
    rng = np.random.RandomState(seed)
    out = collections.OrderedDict()
    for name, shape, dtype, init in tensors:
        if init[0] == 'normal':
            out[name] = rng.normal(init[1], init[2], shape).astype(np.float32)
        elif init[0] == 'uniform':
            out[name] = rng.uniform(init[1], init[2], shape).astype(np.float32)
    return out


def _digest(arrays):
    h = hashlib.sha256()
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        h.update(('%s|%s|%s|' % (name, a.dtype.str, list(a.shape))).encode())
        h.update(a.astype(a.dtype.newbyteorder('<')).tobytes())
    return h.hexdigest()


def state_dict(name):
    """The fixture's full state dict (torch's key order), its manifest and arrays."""
    manifest, arrays = _manifest(name)
    drawn = _draw(manifest['tensors'], manifest['seed'])
    state = collections.OrderedDict()
    for key, shape, dtype, init in manifest['tensors']:
        if init[0] == 'stats':
            state[key] = arrays['stats/' + key]
        elif init[0] == 'count':
            state[key] = np.array(init[1], dtype=np.int64)
        else:
            state[key] = drawn[key]
        assert list(state[key].shape) == shape, key
    assert _digest(state) == manifest['sha256'], \
        'the weights drawn here are not those the reference logits were computed with'
    return state, manifest, arrays


def _safetensors(state, path):
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(path))
    return str(path)


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _one_error_line(capsys):
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error: '), err
    return err[0]


@pytest.mark.parametrize('name', FIXTURES)
def test_converted_fixture_reproduces_the_reference_logits(name, tmp_path, capsys):
    state, manifest, arrays = state_dict(name)
    path = _safetensors(state, tmp_path / ('%s.safetensors' % name))
    store = str(tmp_path / 'store')
    assert run('convert', [path, '--source', manifest['source'], '--out', store]) == 0
    assert manifest['hcnet'] in capsys.readouterr().out
    with open(os.path.join(store, 'index.json')) as f:
        entry = json.load(f)[manifest['hcnet']]
    assert (entry['kwargs'] or {}) == manifest['kwargs']
    net = hcnet.get_model(manifest['hcnet'], pretrained=os.path.join(store, entry['file']),
                          **manifest['kwargs'])
    y = net(mx.nd.array(arrays['input'])).asnumpy().astype(np.float64)
    diff = _rel(y, arrays['logits'])
    print('%s: hcnet float32 vs %s float64 logits: %.3g relative (torch float32: %.3g)'
          % (name, manifest['source'], diff, manifest['torch_float32_vs_float64']))
    assert diff <= TOLERANCE, diff


@pytest.mark.parametrize('name', [n for n in FIXTURES if 'efficientnet' in n])
def test_efficientnet_fixtures_are_the_same_function_in_float64(name, tmp_path):
    """In float64 the converted EfficientNets compute timm's function to rounding (about
    1e-14 relative for B0..B3): the float32 budget above is arithmetic, not architecture.
    (MobileNetV3 is left out: MXNet holds hard-sigmoid's 1/6 as a float32 constant.)"""
    state, manifest, arrays = state_dict(name)
    converted = convert_params(_safetensors(state, tmp_path / 'w.safetensors'),
                               manifest['source'])
    params = str(tmp_path / 'w.params')
    mx.nd.save(params, {k: mx.nd.array(v) for k, v in converted.params.items()})
    net = hcnet.get_model(manifest['hcnet'], pretrained=params)
    net.cast('float64')
    for key, param in net._collect_params_with_prefix().items():   # the float32 tensors, exact
        param.set_data(mx.nd.array(converted.params[key], dtype='float64'))
    y = net(mx.nd.array(arrays['input'], dtype='float64')).asnumpy()
    assert y.dtype == np.float64
    assert _rel(y, arrays['logits']) <= 1e-10


@pytest.mark.parametrize('name', FIXTURES)
def test_fixtures_are_well_conditioned(name):
    """torch's own float32 logits are far inside the tolerance of its float64 ones, so a
    float32 network can meet it (B1..B3's BatchNorm statistics are calibrated layer by
    layer for this: see scripts/make_convert_fixtures.py)."""
    manifest, arrays = _manifest(name)
    noise = _rel(arrays['logits_torch_float32'], arrays['logits'])
    assert noise == pytest.approx(manifest['torch_float32_vs_float64'])
    assert noise <= TOLERANCE / 5
    assert 1 < manifest['logits_max_abs'] < 100


def test_torchvision_weights_need_its_epsilon(tmp_path):
    """The same weights in a network with hcnet's default epsilon (1e-5) compute another
    function: the entry's kwargs are not decoration."""
    state, manifest, arrays = state_dict('torchvision_mobilenet_v3_large')
    converted = convert_params(_safetensors(state, tmp_path / 'tv.safetensors'),
                               manifest['source'])
    params = str(tmp_path / 'tv.params')
    mx.nd.save(params, {k: mx.nd.array(v) for k, v in converted.params.items()})
    net = hcnet.get_model('hc_m15_i0', pretrained=params)
    y = net(mx.nd.array(arrays['input'])).asnumpy().astype(np.float64)
    assert _rel(y, arrays['logits']) > 10 * TOLERANCE


def test_converted_store_on_localhost_loads_with_its_metadata(tmp_path, monkeypatch):
    import functools
    import http.server
    import threading
    from hcnet.store import clear_index_cache
    state, manifest, arrays = state_dict('torchvision_mobilenet_v3_large')
    path = _safetensors(state, tmp_path / 'tv.safetensors')
    store = str(tmp_path / 'store')
    assert run('convert', [path, '--source', 'torchvision:mobilenet_v3_large.IMAGENET1K_V1',
                           '--name', 'hc_m15_i0', '--out', store, '--zip']) == 0

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                             functools.partial(Quiet, directory=store))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv('HCNET_REPO_URL', 'http://127.0.0.1:%d/' % server.server_address[1])
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'home'))
    clear_index_cache()
    try:
        net = hcnet.get_model('hc_m15_i0', pretrained=True)
    finally:
        server.shutdown()
        server.server_close()
        clear_index_cache()
    entry = net.pretrained_info['entry']
    assert entry['kwargs'] == {'norm_kwargs': {'epsilon': 0.001}}
    assert entry['mean'] == [0.485, 0.456, 0.406] and entry['std'] == [0.229, 0.224, 0.225]
    assert entry['crop_ratio'] == pytest.approx(224 / 256.0)        # IMAGENET1K_V1's
    assert entry['input_size'] == 224 and entry['interpolation'] == 'bilinear'
    assert entry['config']['data']['crop_ratio'] == entry['crop_ratio']
    assert entry['dataset'] == 'imagenet' and entry['classes'] == 1000
    assert entry['source']['tag'] == 'IMAGENET1K_V1' and entry['source']['tag_chosen_by'] == 'given'
    assert entry['source']['reported_top1'] == 74.042
    assert entry['licence'] == 'BSD-3-Clause'
    assert len(net.synset) == 1000 and net.synset[0] == 'n01440764'
    assert len(net.classes) == 1000                # ImageNet-1k's names, as GluonCV sets them
    eps = {b._kwargs['eps'] for b in hcnet.nn.walk_blocks(net)
           if isinstance(b, mx.gluon.nn.BatchNorm)}
    assert eps == {1e-3}
    y = net(mx.nd.array(arrays['input'])).asnumpy().astype(np.float64)
    assert _rel(y, arrays['logits']) <= TOLERANCE


# ---------------------------------------------------------------------- the reader

@pytest.mark.parametrize('fname', ['convert_torch_reader.pth', 'convert_torch_reader_legacy.pth'])
def test_reader_reads_what_torch_wrote(fname, tmp_path):
    expected = np.load(os.path.join(DATA, 'convert_torch_reader.npz'))
    got = read_state_dict(os.path.join(DATA, fname))
    assert list(got) == list(expected['_order'])          # torch's order is kept
    for key in got:
        want = expected[key]
        assert got[key].shape == want.shape and got[key].flags['C_CONTIGUOUS'], key
        if key != 'bf16':
            assert got[key].dtype == want.dtype, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)
    # the zip format under another name (.bin, Hugging Face's pytorch_model.bin) reads the same
    if fname == 'convert_torch_reader.pth':
        other = tmp_path / 'pytorch_model.bin'
        other.write_bytes(open(os.path.join(DATA, fname), 'rb').read())
        assert list(read_state_dict(str(other))) == list(got)


class _Payload:
    """Pickles as a call of ``exec`` that would create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, ("open(%r, 'w').close()" % self.marker,))


def _hostile_pickle(marker):
    return pickle.dumps(collections.OrderedDict([('conv.weight', _Payload(marker))]), protocol=2)


def _hostile_file(kind, tmp_path, marker):
    payload = _hostile_pickle(marker)
    path = tmp_path / ('hostile_%s.pth' % kind)
    if kind == 'zip':
        with zipfile.ZipFile(str(path), 'w') as zf:
            zf.writestr('archive/data.pkl', payload)
            zf.writestr('archive/version', '3\n')
    elif kind == 'legacy':
        head = b''.join(pickle.dumps(v, protocol=2) for v in (
            0x1950a86a20f9469cfc6c, 1001,
            {'protocol_version': 1001, 'little_endian': True,
             'type_sizes': {'short': 2, 'int': 4, 'long': 4}}))
        path.write_bytes(head + payload + pickle.dumps([], protocol=2))
    else:
        path.write_bytes(payload)
    return str(path)


def test_the_hostile_payload_is_live(tmp_path):
    """Control: an ordinary unpickler runs it (so the refusals below mean something)."""
    marker = tmp_path / 'ran'
    path = tmp_path / 'payload.pkl'
    path.write_bytes(_hostile_pickle(str(marker)))
    subprocess.run([sys.executable, '-c', 'import pickle, sys; '
                    'pickle.loads(open(sys.argv[1], "rb").read())', str(path)],
                   check=True, timeout=60)
    assert marker.exists()


@pytest.mark.parametrize('kind', ['zip', 'legacy', 'raw'])
def test_a_pickle_that_would_run_code_is_refused_and_does_not_run(kind, tmp_path, capsys):
    marker = tmp_path / 'ran'
    path = _hostile_file(kind, tmp_path, str(marker))
    code = run('convert', [path, '--source', 'timm:mobilenetv3_large_100',
                           '--out', str(tmp_path / 'store')])
    assert code == 2
    line = _one_error_line(capsys)
    assert path in line
    if kind != 'raw':                   # a bare pickle is no PyTorch file: refused before
        # protocol 2 (torch.save's) spells builtins as Python 2's __builtin__
        assert ('builtins.exec' in line or '__builtin__.exec' in line) and 'refusing' in line
    assert not marker.exists()
    assert not (tmp_path / 'store').exists()


@pytest.mark.parametrize('module,name', [('os', 'system'), ('posix', 'system'),
                                         ('builtins', 'eval'), ('builtins', 'getattr'),
                                         ('torch', 'load'), ('torch._utils', '_rebuild_qtensor'),
                                         ('collections', 'namedtuple'), ('numpy', 'load')])
def test_only_tensor_globals_are_found(module, name):
    import io
    with pytest.raises(pickle.UnpicklingError, match='%s.%s' % (module, name)):
        RestrictedUnpickler(io.BytesIO(b'')).find_class(module, name)


def test_corrupt_and_foreign_files_are_one_line(tmp_path, capsys):
    cases = {'empty.pth': b'', 'text.pth': b'hello world\n' * 10,
             'trunc.safetensors': struct.pack('<Q', 1000) + b'{"a":',
             'notorch.zip': None}
    for fname, body in cases.items():
        path = tmp_path / fname
        if body is None:
            with zipfile.ZipFile(str(path), 'w') as zf:
                zf.writestr('readme.txt', 'no pickle here')
        else:
            path.write_bytes(body)
        assert run('convert', [str(path), '--source', 'timm:efficientnet_b0',
                               '--out', str(tmp_path / 'store')]) == 2
        assert str(path) in _one_error_line(capsys)
    # a zip whose storage record is shorter than its pickle says
    src = os.path.join(DATA, 'convert_torch_reader.pth')
    bad = tmp_path / 'short.pth'
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(str(bad), 'w') as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if '/data/' in info.filename and not info.filename.endswith('serialization_id'):
                data = data[:-4]
            zout.writestr(info.filename, data)
    with pytest.raises(ReadError, match='bytes, the pickle says'):
        read_state_dict(str(bad))


# --------------------------------------------------------------------- the mapping

def _zeros(name):
    manifest, _ = _manifest(name)
    return collections.OrderedDict(
        (k, np.zeros(shape, dtype=np.int64 if dtype == 'int64' else np.float32))
        for k, shape, dtype, _ in manifest['tensors']), manifest


def _convert_error(state, source, tmp_path, capsys):
    path = _safetensors(state, tmp_path / 'w.safetensors')
    assert run('convert', [path, '--source', source, '--out', str(tmp_path / 'store')]) == 2
    line = _one_error_line(capsys)
    assert not (tmp_path / 'store').exists()
    return line


def test_a_tensor_that_does_not_map_is_named(tmp_path, capsys):
    state, manifest = _zeros('timm_mobilenetv3_large_100')
    source = manifest['source']
    renamed = collections.OrderedDict((k.replace('blocks.3.1.conv_pwl', 'blocks.3.1.conv_xx'), v)
                                      for k, v in state.items())
    assert 'blocks.3.1.conv_xx.weight' in _convert_error(renamed, source, tmp_path, capsys)

    reshaped = collections.OrderedDict(state)
    reshaped['blocks.2.0.conv_dw.weight'] = np.zeros((72, 1, 3, 3), np.float32)
    line = _convert_error(reshaped, source, tmp_path, capsys)
    assert 'blocks.2.0.conv_dw.weight' in line and '(72, 1, 3, 3)' in line

    missing = collections.OrderedDict((k, v) for k, v in state.items() if k != 'conv_head.bias')
    line = _convert_error(missing, source, tmp_path, capsys)
    assert 'prelogits' in line or 'conv_head' in line or 'classifier.weight' in line, line

    extra = collections.OrderedDict(state, **{'blocks.7.0.conv.weight': np.zeros((1,), 'f')})
    assert 'blocks.7.0' in _convert_error(extra, source, tmp_path, capsys)

    wide = collections.OrderedDict(state)
    wide['classifier.weight'] = np.zeros((11221, 1280), np.float32)
    wide['classifier.bias'] = np.zeros((11221,), np.float32)
    line = _convert_error(wide, source, tmp_path, capsys)
    assert 'classifier.' in line and '1000 classes' in line


def test_another_networks_weights_are_refused(tmp_path, capsys):
    state, _ = _zeros('timm_efficientnet_b0')
    line = _convert_error(state, 'timm:mobilenetv3_large_100', tmp_path, capsys)
    assert 'tensor ' in line
    state, _ = _zeros('torchvision_mobilenet_v3_large')
    line = _convert_error(state, 'timm:mobilenetv3_large_100', tmp_path, capsys)
    assert re.search(r'tensor (features|classifier)\.', line) and 'timm' in line, line
    state, _ = _zeros('timm_mobilenetv3_large_100')
    line = _convert_error(state, 'torchvision:mobilenet_v3_large', tmp_path, capsys)
    assert "tensor " in line and "torchvision" in line, line


def test_name_and_source_must_agree(tmp_path, capsys):
    path = str(tmp_path / 'x.safetensors')
    assert run('convert', [path, '--source', 'timm:efficientnet_b0', '--name', 'hc_m15_i0',
                           '--out', str(tmp_path / 's')]) == 2
    assert 'hc_effb0_m16_i0' in _one_error_line(capsys)
    assert run('convert', [path, '--source', 'timm:resnet50', '--out', str(tmp_path / 's')]) == 2
    assert 'timm:resnet50' in _one_error_line(capsys)
    assert run('convert', [path, '--source', 'timm:efficientnet_b0.no_such_tag',
                           '--out', str(tmp_path / 's')]) == 2
    assert 'no_such_tag' in _one_error_line(capsys)


def test_tags():
    src, tag, how = get_source('torchvision:mobilenet_v3_large', 'mobilenet_v3_large-8738ca79.pth')
    assert tag.name == 'IMAGENET1K_V1' and how.startswith('file name')
    assert get_source('torchvision:mobilenet_v3_large', 'model.safetensors')[1].name == \
        'IMAGENET1K_V2'                                          # torchvision's DEFAULT
    assert get_source('timm:mobilenetv3_large_100')[1].name == 'ra_in1k'   # timm's default
    tag = get_source('timm:efficientnet_b0.ra4_e3600_r224_in1k')[1]
    assert tag.mean == (0.5, 0.5, 0.5) and tag.crop_ratio == 0.9
    assert (tag.test_input_size, tag.test_crop_ratio) == (256, 1.0)
    for src in SOURCES.values():
        assert hcnet.list_models(src.hcnet)
        assert src.default_tag in src.tags


#: timm 1.0.31's pretrained_cfg of each default tag (timm/models/efficientnet.py): network,
#: tag, input_size, crop_pct, test_input_size, test_crop_pct, mean, release file; top-1 at
#: both sizes from timm's results-imagenet.csv. Not the paper's 240 / 260 / 300 px.
_EFFB_DEFAULTS = {
    'timm:efficientnet_b1': ('hc_effb1_m23_i0', 'ra4_e3600_r240_in1k', 240, 0.9, 288, 1.0,
                             (0.5, 0.5, 0.5), None, 80.404, 81.444),
    'timm:efficientnet_b2': ('hc_effb2_m23_i0', 'ra_in1k', 256, 0.875, 288, 1.0,
                             (0.485, 0.456, 0.406), 'efficientnet_b2_ra-bcdf34b7.pth',
                             79.324, 80.612),
    'timm:efficientnet_b3': ('hc_effb3_m26_i0', 'ra2_in1k', 288, 0.875, 320, 1.0,
                             (0.485, 0.456, 0.406), 'efficientnet_b3_ra2-cf984f9c.pth',
                             81.472, 82.296),
}


@pytest.mark.parametrize('key', sorted(_EFFB_DEFAULTS))
def test_efficientnet_b1_b3_sources(key):
    name, tag_name, size, crop, test_size, test_crop, mean, release, top1, test_top1 = \
        _EFFB_DEFAULTS[key]
    src, tag, how = get_source(key, 'model.safetensors')
    assert how == 'default' and src.hcnet == name and src.kwargs == {} and src.layout == 'timm'
    assert (tag.name, tag.input_size, tag.crop_ratio, tag.test_input_size,
            tag.test_crop_ratio) == (tag_name, size, crop, test_size, test_crop)
    assert tag.mean == mean and tag.interpolation == 'bicubic'
    assert (tag.top1, tag.test_top1) == (top1, test_top1)
    assert ('timm/%s.%s: model.safetensors, pytorch_model.bin' % (src.model, tag_name)
            in tag.files)
    if release:
        assert get_source(key, release)[1] is tag and tag.url.endswith('/' + release)
    b1_ft = get_source('timm:efficientnet_b1', 'efficientnet_b1-533bc792.pth')[1]
    assert (b1_ft.name, b1_ft.input_size, b1_ft.crop_ratio, b1_ft.mean) == \
        ('ft_in1k', 224, 0.875, (0.485, 0.456, 0.406))


def test_converted_entry_carries_timms_sizes(tmp_path, capsys):
    state, manifest, _ = state_dict('timm_efficientnet_b3')
    path = _safetensors(state, tmp_path / 'model.safetensors')
    store = str(tmp_path / 'store')
    assert run('convert', [path, '--source', 'timm:efficientnet_b3', '--out', store]) == 0
    out = capsys.readouterr().out
    assert '288 px, crop 0.8750' in out and '82.296 at its test size 320 px' in out
    with open(os.path.join(store, 'index.json')) as f:
        entry = json.load(f)['hc_effb3_m26_i0']
    assert entry['input_size'] == 288 and entry['crop_ratio'] == 0.875
    assert entry['config']['data']['input_size'] == 288
    assert entry['mean'] == [0.485, 0.456, 0.406] and entry['interpolation'] == 'bicubic'
    assert (entry.get('kwargs') or {}) == {}
    source = entry['source']
    assert source['spec'] == 'timm:efficientnet_b3.ra2_in1k'
    assert (source['test_input_size'], source['test_crop_ratio'],
            source['reported_top1_at_test_size'], source['reported_top1']) == \
        (320, 1.0, 82.296, 81.472)
    assert source['tensors'] == len([t for t in manifest['tensors']
                                     if not t[0].endswith('num_batches_tracked')])


def test_list_sources_and_help(capsys):
    assert run('convert', ['--list-sources']) == 0
    out = capsys.readouterr().out
    for key in SOURCES:
        assert key in out
    assert 'mobilenet_v3_large-5c1a4163.pth' in out and 'efficientnet_b0_ra-3dd342df.pth' in out
    assert 'efficientnet_b3_ra2-cf984f9c.pth' in out and 'hc_effb2_m23_i0' in out
    with pytest.raises(SystemExit) as exit_:
        run('convert', ['x.pth', '--out', 'store'])       # no --source: argparse's error
    assert exit_.value.code == 2


def test_script_shim(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(os.path.dirname(DATA), '..', 'scripts',
                                                        'convert_weights.py'), '--list-sources'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and 'timm:efficientnet_b0' in proc.stdout


def test_convert_error_is_a_value_error():
    assert issubclass(ConvertError, ValueError) and issubclass(ReadError, ValueError)
