"""Failures end cleanly: one line on stderr, a documented exit code, nothing half-written."""
import os
import re

import pytest

from conftest import release_hcnet_logger
from hcnet.cli import run
from hcnet.train import loop

TINY = ['data.dataset=synthetic', 'data.synthetic_samples=64', 'data.val_samples=16',
        'data.input_size=32', 'model.classes=10', 'train.batch_size=8',
        'train.reference_batch=8', 'train.warmup_epochs=0', 'train.dtype=float32',
        'train.gpus=[]', 'data.num_workers=0', 'train.steps_per_epoch=3', 'train.epochs=1']



def _one_line(capsys):
    err = capsys.readouterr().err.replace('\r', '\n').strip().splitlines()
    lines = [line for line in err if line.strip() and not line.startswith('epoch ')]
    assert len(lines) == 1 and lines[0].startswith('error: '), err   # (and the progress bar)
    assert 'Traceback' not in ''.join(err)
    return lines[0]


def test_divergence_is_one_line_with_the_1_based_step(tmp_path, capsys):
    out = tmp_path / 'run'
    code = run('train', ['--config', 'hc_m10_i10.yaml', 'train.lr=1.0e+30',
                         'output_dir=%s' % out] + TINY)
    assert code == loop.EXIT_DIVERGED == 3
    line = _one_line(capsys)
    assert 'diverged' in line and re.search(r'at epoch 1 step \d \(of 3\)', line), line
    with open(out / 'train.log') as f:
        assert 'diverged' in f.read()
    assert not [f for f in os.listdir(out) if f.endswith('.tmp')]


def test_output_under_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    code = run('train', ['--config', 'hc_m10_i10.yaml',
                         'output_dir=%s' % (blocker / 'run')] + TINY)
    assert code in (loop.EXIT_USER, loop.EXIT_IO)
    assert str(blocker) in _one_line(capsys)


@pytest.mark.parametrize('command', ['export', 'publish'])
def test_out_that_is_a_file_is_one_line(command, tmp_path, capsys):
    from hcnet.train.checkpoint import save_checkpoint
    import hcnet
    import mxnet as mx
    net = hcnet.get_model('hc_m5_i10', classes=3)
    net(mx.nd.zeros((1, 3, 32, 32)))
    ckpt = tmp_path / 'n.ckpt'
    save_checkpoint(str(ckpt), net, None, {'epoch': 0, 'model': 'hc_m5_i10', 'classes': 3})
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    args = (['--checkpoint', str(ckpt), '--out', str(blocker), '--no-onnx']
            if command == 'export' else [str(ckpt), '--out', str(blocker)])
    assert run(command, args) == 2
    assert str(blocker) in _one_line(capsys)
    assert blocker.read_text() == 'x'


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MiB tmpfs: smaller than any checkpoint or export of the zoo's networks."""
    import subprocess
    mount = tmp_path / 'small'
    mount.mkdir()
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip('mounting a tmpfs needs root (CI runs as root): %s' % proc.stderr.strip())
    try:
        yield mount
    finally:
        release_hcnet_logger()                    # train.log is open on the tmpfs
        if subprocess.run(['umount', str(mount)], capture_output=True).returncode != 0:
            subprocess.run(['umount', '-l', str(mount)], check=False)


def _no_temporary_files(root):
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if '.tmp' in f]


def test_a_full_disk_during_training_is_one_line(full_disk, capsys):
    out = full_disk / 'run'
    code = run('train', ['--config', 'hc_m10_i10.yaml', 'output_dir=%s' % out] + TINY)
    assert code == loop.EXIT_IO == 74
    assert 'No space left on device' in _one_line(capsys)
    assert not _no_temporary_files(full_disk)
    assert 'No space left' in (out / 'train.log').read_text()
    assert (out / '.lock').read_text() == ''            # released


def test_a_full_disk_during_export_leaves_nothing(full_disk, capsys):
    code = run('export', ['hc_m5_i10', '--pretrained', 'random', '--no-onnx',
                          '--input-size', '32', '--out', str(full_disk / 'exp')])
    assert code == 74
    assert 'disk is full' in _one_line(capsys)
    assert os.listdir(full_disk / 'exp') == []


def test_a_full_disk_during_publish_leaves_nothing(full_disk, tmp_path, capsys):
    from hcnet.train.checkpoint import save_checkpoint
    import hcnet
    import mxnet as mx
    net = hcnet.get_model('hc_m10_i10', classes=3)
    net(mx.nd.zeros((1, 3, 32, 32)))
    ckpt = tmp_path / 'n.ckpt'
    save_checkpoint(str(ckpt), net, None, {'epoch': 0, 'model': 'hc_m10_i10', 'classes': 3})
    assert run('publish', [str(ckpt), '--out', str(full_disk / 'store')]) == 2
    assert 'cannot write' in _one_line(capsys)
    assert os.listdir(full_disk / 'store') == []
