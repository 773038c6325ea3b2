"""The package's layout and interfaces: zoo models unchanged by the move, one command,
no script loaded by path, dependencies running one way."""
import ast
import json
import os
import re
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import hcnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINGERPRINT = os.path.join(ROOT, 'tests', 'data', 'zoo_fingerprint.json')

with open(FINGERPRINT) as _f:
    RECORDED = json.load(_f)


def test_every_zoo_model_was_recorded():
    assert sorted(RECORDED) == sorted(hcnet.list_models())


@pytest.mark.parametrize('name', sorted(RECORDED))
def test_zoo_model_unchanged(name):
    """Parameter names, shapes and seeded outputs equal those recorded before the layout
    change (tests/data/zoo_fingerprint.json: 10 classes, seed 0, a 2x3x64x64 input)."""
    mx.random.seed(0)
    np.random.seed(0)
    net = hcnet.get_model(name, classes=10)
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (2, 3, 64, 64)))
    y = net(x).asnumpy().astype(np.float64).ravel()
    params = [[k, list(v.shape)] for k, v in net._collect_params_with_prefix().items()]
    assert params == RECORDED[name]['params']
    ref = np.array(RECORDED[name]['logits'])
    assert np.abs(y - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())


def _python_files(*dirs):
    for d in dirs:
        for base, _, files in os.walk(os.path.join(ROOT, d)):
            for f in files:
                if f.endswith('.py'):
                    yield os.path.join(base, f)


def test_no_script_loaded_by_path_and_no_sys_path_edits():
    bad = []
    for path in _python_files('hcnet', 'scripts', 'tests'):
        if path == os.path.abspath(__file__):
            continue
        text = open(path, encoding='utf-8').read()
        for pattern in (r'sys\.path\.(insert|append)', r'spec_from_file_location',
                        r'runpy\.run_path'):
            if re.search(pattern, text):
                bad.append((os.path.relpath(path, ROOT), pattern))
    assert not bad


#: package -> packages it must not import (dependencies run one way)
_FORBIDDEN = {
    'nn': ('arch', 'models', 'model_zoo', 'train', 'deploy', 'bench', 'paper', 'commands', 'store'),
    'arch': ('models', 'model_zoo', 'train', 'deploy', 'bench', 'paper', 'commands', 'store'),
    'models': ('model_zoo', 'train', 'deploy', 'bench', 'paper', 'commands', 'store'),
    'store': ('nn', 'arch', 'models', 'model_zoo', 'train', 'deploy', 'bench', 'paper',
              'commands'),
    'model_zoo': ('train', 'deploy', 'bench', 'paper', 'commands'),
    'deploy': ('train', 'bench', 'paper', 'commands'),
    'paper': ('train', 'deploy', 'bench', 'commands'),
    'train': ('deploy', 'bench', 'paper', 'commands'),
    'data': ('nn', 'arch', 'models', 'model_zoo', 'train', 'deploy', 'bench', 'paper',
             'commands', 'store'),
    'convert': ('train', 'deploy', 'bench', 'paper', 'commands'),
}
# hcnet.convert (timm / torchvision weights into store files) is a consumer of the zoo
# beside train and deploy: nothing below it, and none of its peers, imports it
for _package in ('nn', 'arch', 'models', 'store', 'model_zoo', 'data', 'train', 'deploy',
                 'paper'):
    _FORBIDDEN[_package] += ('convert',)


def _imports(path, package):
    """hcnet subpackages imported by the module at ``path`` inside ``package``."""
    tree = ast.parse(open(path, encoding='utf-8').read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or '').startswith('hcnet.'):
                found.add(node.module.split('.')[1])
            elif node.level == 2 and node.module:
                found.add(node.module.split('.')[0])
            elif node.level == 2:
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith('hcnet.'):
                    found.add(a.name.split('.')[1])
    return found


@pytest.mark.parametrize('package', sorted(_FORBIDDEN))
def test_dependencies_run_one_way(package):
    wrong = {}
    for path in _python_files(os.path.join('hcnet', package)):
        hit = _imports(path, package) & set(_FORBIDDEN[package])
        if hit:
            wrong[os.path.relpath(path, ROOT)] = sorted(hit)
    assert not wrong


def test_cli_lists_every_subcommand():
    from hcnet.cli import COMMANDS
    out = subprocess.run([sys.executable, '-m', 'hcnet', '--help'], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0
    for name in COMMANDS:
        assert re.search(r'^  %s\s' % re.escape(name), out.stdout, re.M), name


@pytest.mark.parametrize('command', ['train', 'eval', 'describe', 'configs', 'tables', 'export',
                                     'publish', 'bench-latency', 'profile-latency',
                                     'bench-train', 'figure2', 'irnet-data', 'convert'])
def test_each_subcommand_has_help_with_examples(command, capsys):
    from hcnet.cli import run
    with pytest.raises(SystemExit) as exit_:
        run(command, ['--help'])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith('usage: hcnet %s' % command)
    assert 'hcnet %s ' % command in out.split('\n', 1)[1]     # an example, not just usage


def test_unknown_subcommand_is_one_line(capsys):
    from hcnet.cli import main
    assert main(['trian']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'trian' in err


def test_per_model_defaults():
    assert hcnet.get_model_cfg('hc_m10_i10').input_size == 224
    assert hcnet.get_model_cfg('irnet_a').input_size == 56
    assert hcnet.get_model_cfg('irnet_a').classes == 100
    assert hcnet.get_model_cfg('resnet50_v1').mean == (0.485, 0.456, 0.406)   # GluonCV's
    net = hcnet.get_model('irnet_b')
    assert net.default_cfg == hcnet.get_model_cfg('irnet_b')


@pytest.mark.parametrize('command', ['eval', 'train'])
def test_pretrained_without_a_store_is_one_line(command, tmp_path, monkeypatch, capsys):
    """``model.pretrained=true`` with no published weights: exit 2, one line, no traceback
    (the eval command's own docstring example)."""
    from hcnet.cli import run
    from hcnet.store import clear_index_cache
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'home'))
    monkeypatch.delenv('HCNET_REPO_URL', raising=False)
    clear_index_cache()
    args = ['--config', 'hc_m10_i10.yaml', 'model.pretrained=true', 'data.dataset=synthetic',
            'data.input_size=32', 'data.synthetic_samples=16', 'data.val_samples=16',
            'train.gpus=[]', 'train.dtype=float32', 'train.batch_size=8',
            'output_dir=%s' % (tmp_path / 'run')]
    assert run(command, args) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1, err
    assert 'hc_m10_i10' in err
