"""hcnet installed like any package: a wheel in a fresh virtual environment, used from a
directory outside the checkout (packaged configs, HCNET_CONFIG_PATH, the console script)."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kwargs)
    assert proc.returncode == 0, '%s failed (%d):\n%s\n%s' % (
        ' '.join(map(str, cmd)), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


@pytest.fixture(scope='module')
def venv(tmp_path_factory):
    """A wheel built from a copy of the sources, installed into a new venv (system site
    packages visible, for mxnet and the other pinned dependencies; no network used)."""
    tmp = tmp_path_factory.mktemp('wheel')
    src = tmp / 'src'
    src.mkdir()
    for name in ('setup.py', 'README.md'):
        shutil.copy(os.path.join(ROOT, name), src / name)
    shutil.copytree(os.path.join(ROOT, 'hcnet'), src / 'hcnet',
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    _run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
          '-w', str(tmp / 'dist'), str(src)])
    wheels = list((tmp / 'dist').glob('hcnet-*.whl'))
    assert len(wheels) == 1
    _run([sys.executable, '-m', 'venv', '--system-site-packages', str(tmp / 'venv')])
    bin_dir = tmp / 'venv' / 'bin'
    _run([str(bin_dir / 'python'), '-m', 'pip', 'install', '-q', '--no-deps', '--no-index',
          str(wheels[0])])
    work = tmp / 'elsewhere'
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'HCNET_CONFIG_PATH')}
    env['PATH'] = str(bin_dir) + os.pathsep + env.get('PATH', '')
    env['MXNET_HOME'] = str(tmp / 'mxnet_home')
    return {'bin': bin_dir, 'work': work, 'env': env}


def test_the_installed_package_is_the_wheel(venv):
    out = _run([str(venv['bin'] / 'python'), '-c', 'import hcnet, sys; print(hcnet.__file__)'],
               cwd=str(venv['work']), env=venv['env']).stdout.strip()
    assert out.startswith(str(venv['bin'].parent)), out        # not the checkout
    assert not out.startswith(ROOT + os.sep + 'hcnet')


def test_packaged_configs_resolve_by_bare_name(venv):
    out = _run([str(venv['bin'] / 'hcnet'), 'configs', 'hc_m10_i10'], cwd=str(venv['work']),
               env=venv['env']).stdout
    assert 'hc_m10_i10 ' in out and 'mobilenetv3/hc_m10_i10.yaml' in out
    code = ('from hcnet.train.config import load_config; '
            'c = load_config("fashion_mnist"); print(c.path, c["model.name"])')
    out = _run([str(venv['bin'] / 'python'), '-c', code], cwd=str(venv['work']),
               env=venv['env']).stdout
    assert 'site-packages' in out and 'hc_m10_i10' in out


def test_hcnet_train_with_a_users_config(venv):
    """``hcnet train --config tiny`` from outside the checkout: ``tiny`` is found through
    HCNET_CONFIG_PATH and inherits (``_base_``, relative to the file) from a second file."""
    mine = venv['work'] / 'my_configs'
    (mine / 'common').mkdir(parents=True)
    (mine / 'common' / 'small.yaml').write_text(
        'model:\n  name: hc_m5_i10\n  classes: 4\n'
        'data:\n  dataset: synthetic\n  synthetic_samples: 64\n  val_samples: 32\n'
        '  input_size: 32\n  num_workers: 0\n'
        'train:\n  epochs: 1\n  steps_per_epoch: 2\n  batch_size: 8\n  reference_batch: 8\n'
        '  gpus: []\n  dtype: float32\n  log_interval: 1\n')
    (mine / 'tiny.yaml').write_text('_base_: common/small.yaml\ntrain:\n  lr: 0.05\n')
    env = dict(venv['env'], HCNET_CONFIG_PATH=str(mine))
    proc = _run([str(venv['bin'] / 'hcnet'), 'train', '--config', 'tiny',
                 'output_dir=%s' % (venv['work'] / 'run')], cwd=str(venv['work']), env=env)
    assert 'final: epoch 1' in proc.stdout
    assert (venv['work'] / 'run' / 'metrics.jsonl').is_file()
    assert (venv['work'] / 'run' / 'last.ckpt').is_file()
