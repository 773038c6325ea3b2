"""Checkpoints that cannot run code: arrays + JSON, no pickle anywhere on the load paths;
hostile, corrupt and old-format files refused with one line; the optimizer rebuilt from the
current config with the checkpoint's position."""
import json
import os
import pickle
import subprocess
import sys
import zipfile

import mxnet as mx
import numpy as np
import pytest

import hcnet
from hcnet.train import loop
from hcnet.train.checkpoint import (CheckpointError, load_checkpoint, restore,
                                    save_checkpoint)
from hcnet.train.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['data.dataset=synthetic', 'data.synthetic_samples=64', 'data.val_samples=16',
        'data.input_size=32', 'model.classes=10', 'train.batch_size=8',
        'train.reference_batch=8', 'train.lr=0.05', 'train.warmup_epochs=0',
        'train.dtype=float32', 'train.gpus=[]', 'data.num_workers=0', 'checkpoint.every=1',
        'checkpoint.keep=2', 'train.steps_per_epoch=3']



def _cfg(out, *extra):
    return load_config('hc_m10_i10.yaml', TINY + list(extra) + ['output_dir=%s' % out])


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A 1-epoch run's directory (last.ckpt with optimizer state)."""
    out = str(tmp_path_factory.mktemp('ckpt') / 'run')
    loop.train(_cfg(out, 'train.epochs=1'))
    return out


def _no_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('pickle used')
    for name in ('load', 'loads', 'Unpickler'):
        monkeypatch.setattr(pickle, name, refuse)


def test_the_file_is_a_zip_of_json_and_mxnet_arrays(trained):
    path = os.path.join(trained, 'last.ckpt')
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ['arrays.params', 'meta.json']
        doc = json.loads(zf.read('meta.json'))
    assert doc['format'] == 'hcnet-checkpoint-2'
    assert doc['meta']['epoch'] == 0 and doc['meta']['model'] == 'hc_m10_i10'
    assert doc['trainer']['optimizer'] == 'nag' and doc['trainer']['num_update'] == 3
    with open(path, 'rb') as f:
        assert b'\x80\x04' not in f.read()[:2]


def test_loading_and_resuming_never_unpickle(trained, tmp_path, monkeypatch):
    """Load, restore into net and trainer, and resume a run, with pickle patched to raise."""
    _no_pickle(monkeypatch)
    ckpt = load_checkpoint(os.path.join(trained, 'last.ckpt'))
    run = loop.setup(_cfg(str(tmp_path / 'fresh'), 'train.epochs=1'))
    try:
        restore(ckpt, run.net, run.trainer)
        assert run.trainer.optimizer.num_update == 3
        for name, p in run.net._collect_params_with_prefix().items():
            np.testing.assert_array_equal(p.data().asnumpy(), ckpt['params'][name])
    finally:
        run.close()
    import shutil
    out = str(tmp_path / 'resumed')
    shutil.copytree(trained, out)
    result = loop.train(_cfg(out, 'train.epochs=2', 'resume=auto'))
    assert result['epoch'] == 2


def test_eval_export_publish_load_without_pickle(trained, tmp_path, monkeypatch, capsys):
    _no_pickle(monkeypatch)
    from hcnet.cli import run
    ckpt = os.path.join(trained, 'last.ckpt')
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'home'))
    assert run('eval', ['--config', 'hc_m10_i10.yaml', '--checkpoint', ckpt] + TINY) == 0
    assert run('export', ['--checkpoint', ckpt, '--out', str(tmp_path / 'export'),
                          '--no-onnx']) == 0
    assert run('publish', [ckpt, '--out', str(tmp_path / 'store')]) == 0
    assert os.path.isfile(tmp_path / 'store' / 'index.json')


def test_resume_follows_the_new_schedule(trained, tmp_path):
    """The optimizer comes from the current config: a run resumed with more epochs trains
    them at the new schedule's lr (a pickled optimizer would keep the old one, at lr 0)."""
    import shutil
    out = str(tmp_path / 'longer')
    shutil.copytree(trained, out)
    result = loop.train(_cfg(out, 'train.epochs=4', 'resume=auto'))
    assert result['epoch'] == 4
    with open(os.path.join(out, 'metrics.jsonl')) as f:
        lrs = [json.loads(line)['lr'] for line in f]
    assert len(lrs) == 4 and all(lr > 0 for lr in lrs[1:3]), lrs


def test_another_optimizer_on_resume_is_refused(trained):
    ckpt = load_checkpoint(os.path.join(trained, 'last.ckpt'))
    run = loop.setup(_cfg(trained + '_sgd', 'train.optimizer=sgd', 'train.epochs=1'))
    try:
        with pytest.raises(CheckpointError, match='optimizer nag, this run uses sgd'):
            restore(ckpt, run.net, run.trainer)
    finally:
        run.close()


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ('touch %s' % self.marker,))


def test_a_hostile_pickle_is_refused_and_never_run(tmp_path):
    """An old-format (pickle) checkpoint whose metadata would run a command: every tool
    refuses it with exit 2 and one line, and the command does not run."""
    marker = tmp_path / 'pwned'
    bad = tmp_path / 'evil.ckpt'
    bad.write_bytes(pickle.dumps({'format': 'hcnet-checkpoint-1', 'params': {},
                                  'meta': _Payload(str(marker))}, protocol=4))
    script = os.path.join(ROOT, 'scripts')
    cmds = [
        [sys.executable, os.path.join(script, 'eval_imagenet.py'), '--config', 'hc_m10_i10.yaml',
         '--checkpoint', str(bad)] + TINY,
        [sys.executable, os.path.join(script, 'export_model.py'), '--checkpoint', str(bad),
         '--out', str(tmp_path / 'x')],
        [sys.executable, os.path.join(script, 'publish_model.py'), str(bad), '--out',
         str(tmp_path / 's')],
        [sys.executable, os.path.join(script, 'train_imagenet.py'), '--config',
         'hc_m10_i10.yaml', 'resume=%s' % bad, 'output_dir=%s' % (tmp_path / 'r')] + TINY,
    ]
    for cmd in cmds:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, (cmd, proc.stderr[-2000:])
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith('error: ') and 'old pickled checkpoint format' in lines[-1]
        assert 'Traceback' not in proc.stderr, proc.stderr
        assert not marker.exists()
    assert not (tmp_path / 'x').exists() and not (tmp_path / 's').exists()


def _rewrite(src, dst, meta=None, arrays=None):
    with zipfile.ZipFile(src) as zf:
        m, a = zf.read('meta.json'), zf.read('arrays.params')
    with zipfile.ZipFile(dst, 'w', zipfile.ZIP_STORED) as zf:
        zf.writestr('meta.json', meta(m) if meta else m)
        zf.writestr('arrays.params', arrays(a) if arrays else a)


def test_corrupt_and_crafted_files_are_checkpoint_errors(trained, tmp_path):
    good = os.path.join(trained, 'last.ckpt')
    data = open(good, 'rb').read()
    cases = {}
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10                       # a bit flip inside the arrays
    cases['flip'] = bytes(flipped)
    cases['truncated'] = data[:len(data) // 3]
    cases['empty'] = b''
    cases['text'] = b'hello'
    for name, blob in cases.items():
        p = tmp_path / (name + '.ckpt')
        p.write_bytes(blob)
        with pytest.raises(CheckpointError):
            load_checkpoint(str(p))
    # arrays re-checksummed by nobody: the recorded sha256 catches a changed array member
    p = str(tmp_path / 'arrays.ckpt')
    _rewrite(good, p, arrays=lambda a: a[:-8] + b'\0' * 8)
    with pytest.raises(CheckpointError, match='checksum'):
        load_checkpoint(p)
    # a huge declared size in a crafted header: refused before anything is allocated
    p = str(tmp_path / 'huge.ckpt')
    blob = bytearray(data)
    i = blob.rfind(b'PK\x01\x02')                         # last central-directory entry
    blob[i + 24:i + 28] = (2 ** 32 - 1).to_bytes(4, 'little')   # its uncompressed size
    open(p, 'wb').write(bytes(blob))
    with pytest.raises(CheckpointError):
        load_checkpoint(p)
    p = str(tmp_path / 'format.ckpt')
    _rewrite(good, p, meta=lambda m: json.dumps(dict(json.loads(m), format='x')).encode())
    with pytest.raises(CheckpointError, match='not an hcnet checkpoint'):
        load_checkpoint(p)


def test_best_checkpoint_has_no_trainer_and_params_round_trip(tmp_path):
    net = hcnet.get_model('hc_m5_i10', classes=3)
    net(mx.nd.zeros((1, 3, 32, 32)))
    path = str(tmp_path / 'n.ckpt')
    save_checkpoint(path, net, None, {'epoch': 4, 'top1': np.float32(1.5)})
    ckpt = load_checkpoint(path)
    assert ckpt['trainer'] is None and ckpt['meta'] == {'epoch': 4, 'top1': 1.5}
    other = hcnet.get_model('hc_m5_i10', classes=3)
    other(mx.nd.zeros((1, 3, 32, 32)))
    restore(ckpt, other)
    for (k, a), (_, b) in zip(net._collect_params_with_prefix().items(),
                              other._collect_params_with_prefix().items()):
        np.testing.assert_array_equal(a.data().asnumpy(), b.data().asnumpy(), err_msg=k)
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]


@pytest.mark.parametrize('override,key', [
    ('model.classes=7', 'model.classes'), ('train.optimizer=sgd', 'train.optimizer'),
    ('train.batch_size=4', 'train.batch_size'), ('data.input_size=40', 'data.input_size'),
    ('train.dtype=bfloat16', 'train.dtype')])
def test_resume_refuses_keys_that_change_the_state(trained, tmp_path, override, key, capsys):
    import shutil
    from hcnet.cli import run
    out = tmp_path / 'r'
    shutil.copytree(trained, out)
    before = {f: (out / f).read_bytes() for f in os.listdir(out) if f != 'train.log'}
    code = run('train', ['--config', 'hc_m10_i10.yaml', 'resume=auto', 'train.epochs=3',
                         'output_dir=%s' % out] + TINY + [override])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0], err
    assert {f: (out / f).read_bytes() for f in before} == before


def test_resume_logs_what_changed_and_keeps_every_config(trained, tmp_path):
    import shutil
    out = tmp_path / 'c'
    shutil.copytree(trained, out)
    loop.train(_cfg(str(out), 'train.epochs=3', 'train.wd=1.0e-4', 'resume=auto'))
    log = (out / 'train.log').read_text()
    assert 'changed on resume:' in log and "train.epochs 1 -> 3" in log
    assert 'train.wd' in log
    names = sorted(f for f in os.listdir(out) if f.startswith('config'))
    assert 'config.yaml' in names and 'config.resume0002.yaml' in names


# --------------------------------------------------------------------------------------
# .params files in eval: another float type is cast, another architecture is one line

def _eval_params(path, *extra):
    return subprocess.run([sys.executable, '-m', 'hcnet', 'eval', '--config', 'hc_m10_i10.yaml',
                           '--checkpoint', path, '--json'] + TINY + list(extra),
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_eval_params_float16_and_foreign(tmp_path):
    from hcnet.train.model import build_model
    net = build_model(_cfg(str(tmp_path / 'x')), [mx.cpu()])
    net.cast('float16')                    # what a float16 (net.cast) run's weights are
    f16 = str(tmp_path / 'half.params')
    net.save_parameters(f16)
    assert {v.dtype for v in mx.nd.load(f16).values()} >= {np.float16}
    net.cast('float32')                    # the same values, widened
    f32 = str(tmp_path / 'full.params')
    net.save_parameters(f32)
    half, full = _eval_params(f16), _eval_params(f32)
    assert half.returncode == 0 and full.returncode == 0, half.stderr[-2000:]
    a, b = json.loads(half.stdout.splitlines()[-1]), json.loads(full.stdout.splitlines()[-1])
    assert a['top1'] == b['top1'] and a['top5'] == b['top5']

    other = build_model(_cfg(str(tmp_path / 'y'), 'model.name=hc_m15_i0'), [mx.cpu()])
    foreign = str(tmp_path / 'foreign.params')
    other.save_parameters(foreign)
    for path in (foreign, str(tmp_path / 'missing.params')):
        proc = _eval_params(path)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and path in lines[0] and 'Traceback' not in proc.stderr, lines
