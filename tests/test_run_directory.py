"""One run per directory: a fresh run refuses a directory that holds a run (every old file
left byte-identical) unless overwrite=true; resume=auto falls back to the newest intact
checkpoint."""
import hashlib
import os
import shutil

import pytest

from hcnet.cli import run
from hcnet.train import loop
from hcnet.train.checkpoint import load_checkpoint

TINY = ['data.dataset=synthetic', 'data.synthetic_samples=64', 'data.val_samples=16',
        'data.input_size=32', 'model.classes=10', 'train.batch_size=8',
        'train.reference_batch=8', 'train.warmup_epochs=0', 'train.dtype=float32',
        'train.gpus=[]', 'data.num_workers=0', 'train.steps_per_epoch=2',
        'checkpoint.every=1', 'checkpoint.keep=3']



@pytest.fixture(scope='module')
def done(tmp_path_factory):
    out = tmp_path_factory.mktemp('rundir') / 'run'
    assert run('train', ['--config', 'hc_m10_i10.yaml', 'train.epochs=2',
                         'output_dir=%s' % out] + TINY) == 0
    return out


def _digests(path):
    return {f: hashlib.sha1((path / f).read_bytes()).hexdigest() for f in os.listdir(path)}


def test_a_fresh_run_into_a_run_is_refused_and_changes_nothing(done, capsys):
    before = _digests(done)
    assert run('train', ['--config', 'hc_m10_i10.yaml', 'train.epochs=1',
                         'output_dir=%s' % done] + TINY) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'holds a run' in err[0] and 'resume=auto' in err[0]
    assert _digests(done) == before


def test_overwrite_starts_anew(done, tmp_path):
    out = tmp_path / 'again'
    shutil.copytree(done, out)
    assert run('train', ['--config', 'hc_m10_i10.yaml', 'train.epochs=1', 'overwrite=true',
                         'output_dir=%s' % out] + TINY) == 0
    assert sorted(f for f in os.listdir(out) if f.startswith('epoch')) == ['epoch0001.ckpt']
    assert len((out / 'metrics.jsonl').read_text().splitlines()) == 1


def test_resume_auto_falls_back_to_the_newest_intact_checkpoint(done, tmp_path, capsys):
    out = tmp_path / 'broken'
    shutil.copytree(done, out)
    (out / 'last.ckpt').write_bytes((out / 'last.ckpt').read_bytes()[:5000])
    assert run('train', ['--config', 'hc_m10_i10.yaml', 'train.epochs=3', 'resume=auto',
                         'output_dir=%s' % out] + TINY) == 0
    log = (out / 'train.log').read_text()
    assert 'newest intact checkpoint' in log and 'epoch0002.ckpt' in log
    assert load_checkpoint(str(out / 'last.ckpt'))['meta']['epoch'] == 2
    epochs = [line for line in (out / 'metrics.jsonl').read_text().splitlines()]
    assert len(epochs) == 3


def test_output_dir_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / 'f'
    f.write_text('x')
    from hcnet.train.config import ConfigError, load_config
    cfg = load_config('hc_m10_i10.yaml', TINY + ['output_dir=%s' % f])
    with pytest.raises(ConfigError, match='not a directory'):
        loop.check_run_directory(cfg, str(f))


def test_two_runs_on_one_directory_cannot_both_proceed(tmp_path, capsys):
    """While one run holds the directory (its lock), another refuses with exit 2."""
    import fcntl
    out = tmp_path / 'busy'
    out.mkdir()
    fd = os.open(out / '.lock', os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b'4242')
    try:
        assert run('train', ['--config', 'hc_m10_i10.yaml', 'train.epochs=1',
                             'output_dir=%s' % out] + TINY) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and 'in use by another run (pid 4242)' in err[0]
        assert sorted(os.listdir(out)) == ['.lock']
    finally:
        os.close(fd)


def test_a_killed_runs_lock_is_taken_over(tmp_path, caplog):
    out = tmp_path / 'stale'
    out.mkdir()
    (out / '.lock').write_text('99999')           # left by a run that died; nobody holds it
    assert run('train', ['--config', 'hc_m10_i10.yaml', 'train.epochs=1',
                         'output_dir=%s' % out] + TINY) == 0
    assert (out / '.lock').read_text() == ''      # released cleanly at the end
