"""Careless and hostile config input ends in one ConfigError naming the key and the file:
never a traceback, never silently wrong (issue: hostile and careless inputs)."""

import pytest

from hcnet.cli import run
from hcnet.train.config import ConfigError, load_config

SMALL = ['data.dataset=synthetic', 'data.input_size=32', 'data.synthetic_samples=16',
         'data.val_samples=8', 'train.batch_size=8', 'train.gpus=[]', 'train.dtype=float32',
         'train.epochs=1', 'train.steps_per_epoch=1', 'data.num_workers=0']


@pytest.mark.parametrize('override,key', [
    ('train.lr_steps=[abc]', 'train.lr_steps'), ('train.lr=.inf', 'train.lr'),
    ('train.wd=.inf', 'train.wd'), ('train.lr=.nan', 'train.lr'),
    ('data.mean=[0.5, .inf, 0.5]', 'data.mean'),
    ('train.steps_per_epoch=-1', 'train.steps_per_epoch')])
def test_bad_overrides_name_the_key(override, key):
    with pytest.raises(ConfigError, match=r'command line: %s' % key.replace('.', r'\.')):
        load_config('hc_m10_i10.yaml', [override])


def test_exponent_numbers_on_the_command_line_are_numbers():
    cfg = load_config('hc_m10_i10.yaml', ['train.lr=3e-5', 'train.wd=1e-6',
                                          'train.final_lr=1E-7'])
    assert cfg['train.lr'] == 3e-5 and cfg['train.wd'] == 1e-6 and cfg['train.final_lr'] == 1e-7


@pytest.mark.parametrize('text,message', [
    ('_base_: 5\n', '_base_ must be a file name'),
    ('_base_: [x, null]\n', '_base_ must be a file name'),
    ('train:\n  lr: 1\n  lr: 2\n', "duplicate key 'lr'"),
    ('train:\n  lr: 1\ntrain:\n  wd: 0\n', "duplicate key 'train'"),
    ('train.lr: 1\ntrain:\n  lr: 2\n', 'train.lr is set twice'),
    ('train:\n  lr: 1e-3\n', None),                       # a number, not a string
])
def test_bad_files_name_the_file(tmp_path, text, message):
    path = tmp_path / 'c.yaml'
    path.write_text(text)
    if message is None:
        assert load_config(str(path))['train.lr'] == 1e-3
        return
    with pytest.raises(ConfigError, match=message) as err:
        load_config(str(path))
    assert str(path) in str(err.value) and '\n' not in str(err.value)


def test_a_non_utf8_file_is_one_error(tmp_path):
    path = tmp_path / 'latin.yaml'
    path.write_bytes(b'train:\n  lr: 0.1  # caf\xe9\n')
    with pytest.raises(ConfigError, match='is not UTF-8'):
        load_config(str(path))


@pytest.mark.parametrize('extra,key', [
    (['model.kwargs={foo: 1}'], 'model.kwargs'),
    (['output_dir=/proc/hcnet_cannot_be_here'], 'output_dir')])
def test_run_time_config_errors_are_one_line(tmp_path, capsys, extra, key):
    code = run('train', ['--config', 'hc_m10_i10.yaml', 'output_dir=%s' % (tmp_path / 'r')]
               + SMALL + extra)
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error: command line: %s' % key), err


def test_an_empty_class_folder_is_no_class(tmp_path):
    from hcnet.train.data import build_data
    from PIL import Image
    for split in ('train', 'val'):
        for name in ('cat', 'dog'):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            Image.new('RGB', (40, 40), (1, 2, 3)).save(folder / 'a.jpg')
        (tmp_path / split / 'empty').mkdir()
    cfg = load_config('hc_m10_i10.yaml', ['data.dataset=image_folder', 'data.root=%s' % tmp_path,
                                          'model.classes=2', 'data.input_size=32',
                                          'data.num_workers=0', 'train.batch_size=1',
                                          'train.gpus=[]', 'train.dtype=float32'])
    data = build_data(cfg, batch_size=1)
    try:
        assert data.num_classes == 2
    finally:
        data.close()
