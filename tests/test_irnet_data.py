"""``hcnet irnet-data``: IR-Net's 56x56, 100-class ImageNet subset, made from a small
ImageNet-like folder the test creates; ``irnet_a`` trains a step on the output."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from hcnet.cli import run
from hcnet.data.irnet100 import (CLASS_LIST, DEFAULT_OUT, NUM_CLASSES, SEED, choose_classes,
                                 class_list_text, downsample, read_class_list)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'scripts', 'train_imagenet.py')
SHIM = os.path.join(ROOT, 'scripts', 'irnet_data.py')

CLASSES = ['n01000001', 'n01000002', 'n01000003']      # the test's own class list
OTHER = 'n09999999'                                    # a folder not in the list
TRAIN_PER_CLASS, VAL_PER_CLASS = 5, 2


# --------------------------------------------------------------------------------------
# the shipped class list

def test_shipped_class_list_is_the_documented_seeded_draw():
    from gluoncv.data import ImageNet1kAttr
    synset = sorted(ImageNet1kAttr().synset)
    wnids = read_class_list(CLASS_LIST)
    assert len(wnids) == NUM_CLASSES == len(set(wnids))
    assert set(wnids) <= set(synset)
    drawn = np.sort(np.random.RandomState(SEED).choice(len(synset), NUM_CLASSES, replace=False))
    assert wnids == [synset[i] for i in drawn] == [w for _, w in choose_classes()]
    with open(CLASS_LIST, encoding='utf-8') as f:
        assert f.read() == class_list_text()          # the file is exactly what it says


def test_irnet_configs_read_the_default_output():
    from hcnet.train.config import load_config
    for name in ('irnet_a', 'irnet_b', 'irnet_c'):
        cfg = load_config(name)
        assert cfg['data.dataset'] == 'image_folder'
        assert os.path.expanduser(cfg['data.root']) == os.path.expanduser(DEFAULT_OUT)
        assert cfg['model.classes'] == NUM_CLASSES and cfg['data.input_size'] == 56


# --------------------------------------------------------------------------------------
# the resize rule

def test_resize_rule_is_centre_square_area_average():
    """The stated rule: the largest centred square, area-resized to 56x56 -- on a 224x224
    square, each output pixel is the mean of a 4x4 block."""
    rs = np.random.RandomState(0)
    square = rs.randint(0, 256, (224, 224, 3)).astype(np.uint8)
    blocks = square.astype(np.float64).reshape(56, 4, 56, 4, 3).mean(axis=(1, 3))
    # landscape: the square between a white and a black 38-pixel strip; portrait: transposed
    wide = np.concatenate([np.full((224, 38, 3), 255, np.uint8), square,
                           np.full((224, 38, 3), 0, np.uint8)], axis=1)
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    for img, expect in ((square, blocks), (wide, blocks), (tall, blocks.transpose(1, 0, 2))):
        out = np.asarray(downsample(Image.fromarray(img)))
        assert out.shape == (56, 56, 3)
        assert np.abs(out.astype(np.float64) - expect).max() <= 1.0   # rounding only
    gray = downsample(Image.fromarray(square[:, :, 0], mode='L'))
    assert gray.mode == 'RGB' and gray.size == (56, 56)


# --------------------------------------------------------------------------------------
# a small ImageNet-like folder

def _jpeg(path, rs, size):
    w, h = size
    Image.fromarray(rs.randint(0, 256, (h, w, 3)).astype(np.uint8)).save(path, 'JPEG')


@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    """ROOT/{train,val}/<wnid>/*.JPEG: varied sizes and aspect ratios, a greyscale image,
    a PNG, one file that is not an image and one truncated JPEG."""
    root = tmp_path_factory.mktemp('imagenet')
    rs = np.random.RandomState(0)
    bad = []
    for split, n in (('train', TRAIN_PER_CLASS), ('val', VAL_PER_CLASS)):
        for c in CLASSES + [OTHER]:
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                size = (int(rs.randint(40, 160)), int(rs.randint(40, 160)))
                _jpeg(str(folder / ('%s_%d.JPEG' % (c, i))), rs, size)
    Image.fromarray(rs.randint(0, 256, (70, 90)).astype(np.uint8), mode='L').save(
        str(root / 'train' / CLASSES[0] / 'gray.JPEG'), 'JPEG')
    Image.fromarray(rs.randint(0, 256, (64, 80, 3)).astype(np.uint8)).save(
        str(root / 'train' / CLASSES[1] / 'png_in_disguise.JPEG'), 'PNG')
    (root / 'train' / CLASSES[2] / 'not_an_image.JPEG').write_bytes(b'hello, not a JPEG')
    bad.append(str(root / 'train' / CLASSES[2] / 'not_an_image.JPEG'))
    whole = root / 'val' / CLASSES[0] / ('%s_0.JPEG' % CLASSES[0])
    truncated = root / 'val' / CLASSES[0] / 'truncated.JPEG'
    truncated.write_bytes(whole.read_bytes()[:300])
    bad.append(str(truncated))
    classes = root / 'classes.txt'
    classes.write_text('# the test\'s classes\n' + '\n'.join(CLASSES) + '\n')
    return {'root': str(root), 'classes': str(classes), 'bad': sorted(bad)}


@pytest.fixture(scope='module')
def built(imagenet, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('out') / 'imagenet100_56')
    proc = subprocess.run([sys.executable, SHIM, imagenet['root'], '--out', out, '--classes',
                           imagenet['classes'], '--workers', '2', '--rec'],
                          capture_output=True, text=True, timeout=300)
    return dict(imagenet, out=out, proc=proc)


def _files(folder):
    return sorted(f for f in os.listdir(folder) if not f.startswith('.'))


def test_builds_56px_image_folders(built):
    proc, out = built['proc'], built['out']
    assert proc.returncode == 0, proc.stderr[-2000:]
    for split, n in (('train', TRAIN_PER_CLASS), ('val', VAL_PER_CLASS)):
        assert sorted(os.listdir(os.path.join(out, split))) == CLASSES    # OTHER left out
        for c in CLASSES:
            src = [f for f in _files(os.path.join(built['root'], split, c))]
            names = _files(os.path.join(out, split, c))
            bad_here = [b for b in built['bad'] if os.path.dirname(b) ==
                        os.path.join(built['root'], split, c)]
            assert len(names) == len(src) - len(bad_here)
            assert all(n.endswith('.JPEG') for n in names)
            for name in names:
                with Image.open(os.path.join(out, split, c, name)) as img:
                    assert img.size == (56, 56) and img.mode == 'RGB' and img.format == 'JPEG'
    # no temporary file left anywhere
    for base, _, files in os.walk(out):
        assert not [f for f in files if f.endswith('.tmp')], base
    with open(os.path.join(out, 'classes.txt')) as f:
        assert f.read().split() == CLASSES
    with open(os.path.join(out, 'irnet100.json')) as f:
        info = json.load(f)
    assert info['classes'] == len(CLASSES) and info['size'] == 56
    assert info['skipped'] == built['bad']


def test_bad_images_are_skipped_and_named_in_one_warning(built):
    proc = built['proc']
    warnings = [line for line in proc.stderr.splitlines() if 'warning' in line]
    assert len(warnings) == 1, proc.stderr
    line = warnings[0]
    assert line.startswith('warning: skipped %d unreadable images' % len(built['bad']))
    assert all(b in line for b in built['bad'])
    assert 'Traceback' not in proc.stderr
    assert '%d classes at 56x56' % len(CLASSES) in proc.stdout
    assert 'img/s' in proc.stderr                    # the progress bar


def test_recordio_output(built):
    import mxnet as mx
    out = built['out']
    for split in ('train', 'val'):
        images = sum(len(_files(os.path.join(out, split, c))) for c in CLASSES)
        reader = mx.recordio.MXIndexedRecordIO(os.path.join(out, split + '.idx'),
                                               os.path.join(out, split + '.rec'), 'r')
        assert len(reader.keys) == images
        labels = []
        for key in reader.keys:
            header, img = mx.recordio.unpack_img(reader.read_idx(key))
            assert img.shape == (56, 56, 3)
            labels.append(int(header.label))
        reader.close()
        assert sorted(set(labels)) == list(range(len(CLASSES)))


def test_rerun_keeps_what_is_there(built, capsys):
    code = run('irnet-data', [built['root'], '--out', built['out'], '--classes',
                              built['classes'], '--workers', '0', '--quiet'])
    assert code == 0
    out = capsys.readouterr().out
    assert '(0 converted, %d already there, %d skipped)' % (
        sum(len(_files(os.path.join(built['out'], s, c)))
            for s in ('train', 'val') for c in CLASSES), len(built['bad'])) in out


def _train(out, run_dir, *extra):
    return subprocess.run(
        [sys.executable, TRAIN, '--config', 'irnet_a', 'data.root=%s' % out,
         'model.classes=%d' % len(CLASSES), 'train.epochs=1', 'train.steps_per_epoch=1',
         'train.batch_size=4', 'train.gpus=[]', 'data.num_workers=0',
         'output_dir=%s' % run_dir] + list(extra),
        capture_output=True, text=True, timeout=600)


def test_irnet_a_trains_a_step_on_the_output(built, tmp_path):
    run_dir = tmp_path / 'irnet_a'
    proc = _train(built['out'], run_dir, 'data.dataset=image_folder')
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(run_dir / 'metrics.jsonl') as f:
        rows = [json.loads(line) for line in f]
    n_val = sum(len(_files(os.path.join(built['out'], 'val', c))) for c in CLASSES)
    assert len(rows) == 1 and rows[0]['val_images'] == n_val and rows[0]['skipped_images'] == 0
    # the run goes on Figure 2
    fig = tmp_path / 'fig'
    assert run('figure2', [str(run_dir), '--out', str(fig)]) == 0
    md = (fig / 'figure2.md').read_text()
    assert '`%s`' % run_dir in md and '`irnet_a`' in md


def test_irnet_a_trains_a_step_on_the_recordio(built, tmp_path):
    proc = _train(built['out'], tmp_path / 'rec', 'data.dataset=imagenet_rec')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / 'rec' / 'metrics.jsonl').is_file()


# --------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written

def _one_line(capsys, needle):
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error: ') and needle in err[0], err


def test_missing_input_dir(tmp_path, capsys):
    missing = str(tmp_path / 'no_imagenet')
    assert run('irnet-data', [missing, '--out', str(tmp_path / 'o'), '--quiet']) == 2
    _one_line(capsys, missing)
    assert not (tmp_path / 'o').exists()


def test_input_without_val_or_classes(imagenet, tmp_path, capsys):
    root = tmp_path / 'in'
    (root / 'train' / CLASSES[0]).mkdir(parents=True)
    assert run('irnet-data', [str(root), '--out', str(tmp_path / 'o'), '--quiet']) == 2
    _one_line(capsys, 'lacks val/')
    # the shipped 100 classes are not in the test's folder
    assert run('irnet-data', [imagenet['root'], '--out', str(tmp_path / 'o'), '--quiet']) == 2
    _one_line(capsys, 'has no folder for 100 of the 100 classes')
    assert run('irnet-data', [imagenet['root'], '--out', imagenet['root'], '--classes',
                              imagenet['classes'], '--quiet']) == 2
    _one_line(capsys, 'is the input directory')
    assert not (tmp_path / 'o').exists()


def test_flat_val_gets_a_hint(tmp_path, capsys):
    root = tmp_path / 'in'
    (root / 'train' / CLASSES[0]).mkdir(parents=True)
    _jpeg(str(root / 'train' / CLASSES[0] / 'a.JPEG'), np.random.RandomState(0), (60, 60))
    (root / 'val').mkdir()
    _jpeg(str(root / 'val' / 'ILSVRC2012_val_00000001.JPEG'), np.random.RandomState(1), (60, 60))
    lst = tmp_path / 'c.txt'
    lst.write_text(CLASSES[0] + '\n')
    assert run('irnet-data', [str(root), '--out', str(tmp_path / 'o'), '--classes', str(lst),
                              '--quiet']) == 2
    _one_line(capsys, 'valprep.sh')


def test_bad_class_list(imagenet, tmp_path, capsys):
    assert run('irnet-data', [imagenet['root'], '--classes', str(tmp_path / 'none.txt'),
                              '--out', str(tmp_path / 'o')]) == 2
    _one_line(capsys, 'none.txt')
    empty = tmp_path / 'empty.txt'
    empty.write_text('# nothing\n')
    assert run('irnet-data', [imagenet['root'], '--classes', str(empty),
                              '--out', str(tmp_path / 'o')]) == 2
    _one_line(capsys, 'names no class')
