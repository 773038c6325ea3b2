"""Tests of hcnet.train.data: the four datasets, determinism, sharding, corrupt images."""
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import cv2
import mxnet as mx
import numpy as np
import pytest

from hcnet.train.config import ConfigError, load_config
from hcnet.train.data import build_data, read_idx

FMNIST = '/usr/share/datasets/fashion-mnist'
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IM2REC = os.path.join(os.path.dirname(mx.__file__), 'tools', 'im2rec.py')
# Fashion-MNIST statistics (0-1 scale, training set): mean 0.2860, std 0.3530
FM_MEAN, FM_STD = [0.286] * 3, [0.353] * 3

needs_fmnist = pytest.mark.skipif(
    not os.path.isfile(os.path.join(FMNIST, 't10k-images-idx3-ubyte.gz')),
    reason='Debian dataset-fashion-mnist files not installed')


def make_cfg(**values):
    """A validated Config; keyword names use '__' for '.' (data__root -> data.root)."""
    overrides = ['%s=%s' % (k.replace('__', '.'), json.dumps(v)) for k, v in values.items()]
    return load_config(None, overrides)


def synth_cfg(**values):
    base = dict(data__dataset='synthetic', data__input_size=16, model__classes=5,
                data__synthetic_samples=100, train__seed=7)
    base.update(values)
    return make_cfg(**base)


def collect(iterator):
    """[(data ndarray, label ndarray)] as numpy."""
    return [(d.asnumpy(), l.asnumpy()) for d, l in iterator]


def row_hashes(batches):
    return [hashlib.sha1(row.tobytes()).hexdigest() for d, _ in batches for row in d]


def same_batches(a, b):
    return len(a) == len(b) and all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
                                    for x, y in zip(a, b))


# --------------------------------------------------------------------------------------
# synthetic

def test_synthetic_shapes_and_len():
    data = build_data(synth_cfg(), batch_size=8)
    assert len(data.train) == 12 and data.num_train == 100
    assert data.num_classes == 5
    batches = collect(data.train.epoch(0))
    assert len(batches) == 12
    for d, l in batches:
        assert d.shape == (8, 3, 16, 16) and d.dtype == np.float32
        assert l.shape == (8,) and l.dtype == np.float32
        assert set(np.unique(l)) <= set(range(5))
    # validation: max(batch, 100 // 10) = 10 images, last batch smaller
    assert data.num_val == 10 and len(data.val) == 2
    assert [d.shape[0] for d, _ in collect(data.val.epoch(0))] == [8, 2]
    x, y = next(iter(data.train.epoch(0)))
    assert x.context == mx.cpu() and y.context == mx.cpu()


def test_synthetic_normalised():
    data = build_data(synth_cfg(data__mean=[0.5] * 3, data__std=[0.289] * 3,
                                data__synthetic_samples=512), batch_size=256)
    d, _ = next(iter(data.train.epoch(0)))
    d = d.asnumpy()
    assert abs(d.mean()) < 0.05 and abs(d.std() - 1) < 0.05  # uniform 0..255


def test_synthetic_deterministic():
    a = build_data(synth_cfg(), batch_size=8)
    b = build_data(synth_cfg(), batch_size=8)
    for epoch in range(3):  # b skips epochs 0-2 (a resumed run)
        collect(a.train.epoch(epoch))
    a3, b3 = collect(a.train.epoch(3)), collect(b.train.epoch(3))
    assert same_batches(a3, b3)
    a4 = collect(a.train.epoch(4))
    assert not same_batches(a3, a4)
    assert sorted(row_hashes(a3)) != row_hashes(a3)  # actually shuffled
    # the same images each epoch (only the order differs), except the dropped remainder
    assert len(set(row_hashes(a3)) & set(row_hashes(a4))) >= 100 - 2 * 4
    c = build_data(synth_cfg(train__seed=8), batch_size=8)
    assert not same_batches(a3, collect(c.train.epoch(3)))
    assert same_batches(collect(a.val.epoch(0)), collect(b.val.epoch(0)))


def test_synthetic_shard_by_rank_disjoint():
    cfg = synth_cfg(data__shard='rank', data__synthetic_samples=103)
    ranks = [build_data(cfg, batch_size=8, rank=r, num_ranks=2) for r in range(2)]
    assert [len(r.train) for r in ranks] == [6, 6]  # 51 images per rank, 48 used
    assert [r.num_train for r in ranks] == [51, 51]
    for epoch in (0, 1):
        h = [row_hashes(collect(r.train.epoch(epoch))) for r in ranks]
        assert len(h[0]) == len(h[1]) == 48
        assert len(set(h[0])) == 48 and not set(h[0]) & set(h[1])
    # different epochs: a different split of the shared permutation
    h0, h1 = (set(row_hashes(collect(ranks[0].train.epoch(e)))) for e in (0, 1))
    assert h0 != h1


def test_synthetic_no_shard_every_rank_whole_set():
    cfg = synth_cfg(data__shard='none', data__synthetic_samples=96)
    ranks = [build_data(cfg, batch_size=8, rank=r, num_ranks=2) for r in range(2)]
    assert [len(r.train) for r in ranks] == [12, 12] and ranks[0].num_train == 96
    h = [row_hashes(collect(r.train.epoch(0))) for r in ranks]
    assert set(h[0]) == set(h[1]) and len(set(h[0])) == 96
    assert h[0] != h[1]  # rank-specific order


def test_synthetic_val_two_ranks_exactly_once():
    cfg = synth_cfg(data__synthetic_samples=170)  # 17 validation images
    whole = collect(build_data(cfg, batch_size=4).val.epoch(0))
    parts = [build_data(cfg, batch_size=4, rank=r, num_ranks=2) for r in range(2)]
    assert [p.num_val for p in parts] == [8, 9]
    assert [len(p.val) for p in parts] == [2, 3]
    got = [b for p in parts for b in collect(p.val.epoch(0))]
    assert np.array_equal(np.concatenate([d for d, _ in got]),
                          np.concatenate([d for d, _ in whole]))
    assert np.array_equal(np.concatenate([l for _, l in got]),
                          np.concatenate([l for _, l in whole]))
    # data.val_samples: the first N images only
    cfg = synth_cfg(data__synthetic_samples=170, data__val_samples=5)
    assert build_data(cfg, batch_size=4).num_val == 5


def test_for_training_false_has_no_train():
    data = build_data(synth_cfg(), batch_size=8, for_training=False)
    assert data.train is None and data.num_train == 0 and len(data.val) == 2


# --------------------------------------------------------------------------------------
# fashion_mnist

def fm_cfg(**values):
    base = dict(data__dataset='fashion_mnist', data__root=FMNIST, data__input_size=32,
                model__classes=10, data__mean=FM_MEAN, data__std=FM_STD,
                data__crop_ratio=1.0, data__num_workers=0)
    base.update(values)
    return make_cfg(**base)


@pytest.fixture(scope='module')
def fmnist():
    if not os.path.isfile(os.path.join(FMNIST, 't10k-images-idx3-ubyte.gz')):
        pytest.skip('Debian dataset-fashion-mnist files not installed')
    return build_data(fm_cfg(), batch_size=128)


@needs_fmnist
def test_fashion_mnist_shapes_labels(fmnist):
    assert fmnist.num_classes == 10 and fmnist.num_train == 60000
    assert len(fmnist.train) == 60000 // 128
    it = fmnist.train.epoch(0)
    for _ in range(3):
        d, l = next(it)
        assert d.shape == (128, 3, 32, 32) and d.dtype == np.float32
        assert l.shape == (128,) and l.dtype == np.float32
        l = l.asnumpy()
        assert l.min() >= 0 and l.max() <= 9 and np.all(l == np.round(l))
        d = d.asnumpy()
        assert np.array_equal(d[:, 0], d[:, 1]) and np.array_equal(d[:, 0], d[:, 2])
        assert abs(d.mean()) < 0.2 and 0.8 < d.std() < 1.2


@needs_fmnist
def test_fashion_mnist_val_covers_test_set(fmnist):
    assert fmnist.num_val == 10000 and len(fmnist.val) == 79
    batches = collect(fmnist.val.epoch(0))
    labels = np.concatenate([l for _, l in batches])
    expected = read_idx(os.path.join(FMNIST, 't10k-labels-idx1-ubyte.gz'))
    assert np.array_equal(labels, expected.astype(np.float32))
    data = np.concatenate([d for d, _ in batches])
    assert data.shape == (10000, 3, 32, 32)
    # normalisation with the dataset's statistics: mean ~0, std ~1
    assert abs(data.mean()) < 0.05 and abs(data.std() - 1) < 0.05


@needs_fmnist
def test_fashion_mnist_val_two_ranks():
    cfg = fm_cfg(data__val_samples=1001)
    parts = [build_data(cfg, batch_size=128, rank=r, num_ranks=2, for_training=False)
             for r in range(2)]
    assert [p.num_val for p in parts] == [500, 501]
    labels = np.concatenate([l for p in parts for _, l in collect(p.val.epoch(0))])
    expected = read_idx(os.path.join(FMNIST, 't10k-labels-idx1-ubyte.gz'))[:1001]
    assert np.array_equal(labels, expected.astype(np.float32))


@needs_fmnist
def test_fashion_mnist_augmentation_deterministic(fmnist):
    other = build_data(fm_cfg(), batch_size=128)
    a = [next(iter(fmnist.train.epoch(2))) for _ in range(2)]
    b = next(iter(other.train.epoch(2)))
    for x in a:
        assert np.array_equal(x[0].asnumpy(), b[0].asnumpy())
        assert np.array_equal(x[1].asnumpy(), b[1].asnumpy())
    c = next(iter(fmnist.train.epoch(3)))
    assert not np.array_equal(c[1].asnumpy(), b[1].asnumpy())
    # augmentation is on: an unaugmented image never has content at the 4-pixel border
    # of both sides, a shifted one leaves a zero band (normalised background) on one side
    bg = (0 - 0.286) / 0.353
    d = b[0].asnumpy()[:, 0]
    assert np.isclose(d, bg, atol=1e-5).all(axis=(1, 2)).sum() == 0
    zero_cols = np.isclose(d, bg, atol=1e-5).all(axis=1)  # (batch, width)
    assert zero_cols[:, :2].all(axis=1).any() or zero_cols[:, -2:].all(axis=1).any()


@needs_fmnist
def test_fashion_mnist_eval_resize_and_crop():
    data = build_data(fm_cfg(data__crop_ratio=0.875, data__val_samples=64), batch_size=64,
                      for_training=False)
    d, l = next(iter(data.val.epoch(0)))
    assert d.shape == (64, 3, 32, 32) and data.num_val == 64


def test_fashion_mnist_missing_root(tmp_path):
    with pytest.raises(ConfigError, match='data.root') as err:
        build_data(fm_cfg(data__root=str(tmp_path / 'nope')), batch_size=8)
    assert 'does not exist' in str(err.value)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ConfigError, match='data.root.*lacks train-images-idx3-ubyte.gz'):
        build_data(fm_cfg(data__root=str(tmp_path / 'empty')), batch_size=8)


@needs_fmnist
def test_fashion_mnist_eval_only_needs_test_files(tmp_path):
    for name in ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'):
        os.symlink(os.path.join(FMNIST, name), str(tmp_path / name))
    data = build_data(fm_cfg(data__root=str(tmp_path)), batch_size=500, for_training=False)
    assert data.train is None and data.num_val == 10000
    with pytest.raises(ConfigError, match='lacks train-images'):
        build_data(fm_cfg(data__root=str(tmp_path)), batch_size=500)


# --------------------------------------------------------------------------------------
# image_folder and imagenet_rec: a small dataset made of Fashion-MNIST test images

N_TRAIN, N_VAL, CLASSES = 159, 40, ('bag', 'coat', 'shirt')  # + one corrupt file each


def _write_folder(root, images, labels, bad_name):
    for i, (img, lab) in enumerate(zip(images, labels)):
        folder = os.path.join(root, CLASSES[lab])
        os.makedirs(folder, exist_ok=True)
        cv2.imwrite(os.path.join(folder, 'img%04d.jpg' % i), cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    with open(os.path.join(root, CLASSES[1], bad_name), 'wb') as f:
        f.write(np.random.RandomState(0).bytes(700))  # not an image


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    if not os.path.isfile(os.path.join(FMNIST, 't10k-images-idx3-ubyte.gz')):
        pytest.skip('Debian dataset-fashion-mnist files not installed')
    images = read_idx(os.path.join(FMNIST, 't10k-images-idx3-ubyte.gz'))
    labels = read_idx(os.path.join(FMNIST, 't10k-labels-idx1-ubyte.gz'))
    keep = np.flatnonzero(np.isin(labels, [0, 1, 2]))[:N_TRAIN + N_VAL]
    images, labels = images[keep], labels[keep]
    root = str(tmp_path_factory.mktemp('folder'))
    _write_folder(os.path.join(root, 'train'), images[:N_TRAIN], labels[:N_TRAIN], 'broken.jpg')
    _write_folder(os.path.join(root, 'val'), images[N_TRAIN:], labels[N_TRAIN:], 'broken.jpg')
    return root


def folder_cfg(root, **values):
    base = dict(data__dataset='image_folder', data__root=root, data__input_size=32,
                model__classes=3, data__num_workers=0, data__crop_ratio=0.875)
    base.update(values)
    return make_cfg(**base)


def test_image_folder_reads_and_skips_corrupt(folder, caplog):
    data = build_data(folder_cfg(folder), batch_size=16)
    assert data.num_classes == 3
    assert data.num_train == N_TRAIN + 1 and len(data.train) == 10
    assert data.num_val == N_VAL + 1 and len(data.val) == 3
    with caplog.at_level(logging.WARNING, logger='hcnet.data'):
        batches = collect(data.train.epoch(0))
    assert len(batches) == 10
    for d, l in batches:  # training batches keep their size (the hole is refilled)
        assert d.shape == (16, 3, 32, 32) and d.dtype == np.float32 and l.shape == (16,)
        assert set(np.unique(l)) <= {0, 1, 2}
    assert data.skipped() == 1
    assert data.skipped_files() == [os.path.join(folder, 'train', 'coat', 'broken.jpg')]
    assert [r.getMessage() for r in caplog.records if 'broken.jpg' in r.getMessage()]
    val = collect(data.val.epoch(0))  # validation drops it: 40 images, not 41
    assert sum(len(l) for _, l in val) == N_VAL and data.skipped() == 2
    labels = np.concatenate([l for _, l in val])
    assert sorted(np.unique(labels)) == [0, 1, 2]
    collect(data.train.epoch(1))  # counted again, warned once
    assert data.skipped() == 3
    bad = os.path.join('train', 'coat', 'broken.jpg')
    assert sum(r.getMessage().endswith(bad) for r in caplog.records) == 1


def test_image_folder_deterministic_across_workers(folder):
    a = build_data(folder_cfg(folder, data__num_workers=0), batch_size=16)
    b = build_data(folder_cfg(folder, data__num_workers=2), batch_size=16)
    try:
        ea, eb = collect(a.train.epoch(1)), collect(b.train.epoch(1))
        assert same_batches(ea, eb)
        assert not same_batches(ea, collect(a.train.epoch(2)))
        assert same_batches(collect(a.val.epoch(0)), collect(b.val.epoch(0)))
        x = ea[0][0]
        assert abs(x.mean()) < 1.5 and x.std() > 0.3  # normalised-ish
    finally:
        b.close()


def test_image_folder_val_two_ranks(folder):
    whole = collect(build_data(folder_cfg(folder), batch_size=8, for_training=False)
                    .val.epoch(0))
    parts = [build_data(folder_cfg(folder), batch_size=8, rank=r, num_ranks=2,
                        for_training=False) for r in range(2)]
    assert [p.num_val for p in parts] == [20, 21]
    got = [b for p in parts for b in collect(p.val.epoch(0))]
    assert np.array_equal(np.concatenate([d for d, _ in got]),
                          np.concatenate([d for d, _ in whole]))
    assert sum(p.skipped() for p in parts) == 1


def test_image_folder_shard_by_rank(folder):
    cfg = folder_cfg(folder, data__shard='rank', data__color_jitter=0.0,
                     data__pca_noise=0.0)
    parts = [build_data(cfg, batch_size=16, rank=r, num_ranks=2) for r in range(2)]
    assert [len(p.train) for p in parts] == [5, 5] and parts[0].num_train == 80


def test_image_folder_missing_root(tmp_path):
    with pytest.raises(ConfigError, match='data.root'):
        build_data(folder_cfg(str(tmp_path / 'missing')), batch_size=8)
    (tmp_path / 'val').mkdir()
    with pytest.raises(ConfigError, match='data.root.*lacks train/'):
        build_data(folder_cfg(str(tmp_path)), batch_size=8)


def _im2rec(prefix, root, *extra):
    """The im2rec tool shipped with MXNet: list (one label per class folder), then pack.

    --num-thread 2: im2rec 1.9.1's single-threaded packer crashes (TypeError in
    write_idx) on an undecodable image; the multi-process one skips it.
    """
    run = [sys.executable, IM2REC]
    subprocess.run(run + ['--list', '--recursive', prefix, root], check=True,
                   capture_output=True)
    subprocess.run(run + ['--num-thread', '2', *extra, prefix, root], check=True,
                   capture_output=True)


@pytest.fixture(scope='module')
def recdir(folder, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('rec'))
    for split in ('train', 'val'):
        # without --pass-through im2rec re-encodes and drops the undecodable file
        _im2rec(os.path.join(root, split), os.path.join(folder, split))
    return root


def rec_cfg(root, **values):
    base = dict(data__dataset='imagenet_rec', data__root=root, data__input_size=32,
                model__classes=3, data__num_workers=2, data__crop_ratio=0.875)
    base.update(values)
    return make_cfg(**base)


def test_imagenet_rec_reads_all(recdir):
    data = build_data(rec_cfg(recdir), batch_size=16)
    assert data.num_train == N_TRAIN and len(data.train) == N_TRAIN // 16
    assert data.num_val == N_VAL and len(data.val) == 3
    batches = collect(data.train.epoch(0))
    assert len(batches) == N_TRAIN // 16
    for d, l in batches:
        assert d.shape == (16, 3, 32, 32) and d.dtype == np.float32 and l.shape == (16,)
    labels = np.concatenate([l for _, l in batches])
    assert set(np.unique(labels)) == {0, 1, 2}
    val = collect(data.val.epoch(0))
    assert [len(l) for _, l in val] == [16, 16, 8]
    val_labels = np.concatenate([l for _, l in val])
    assert np.bincount(val_labels.astype(int)).sum() == N_VAL
    # the validation labels are those of the val/ folders
    with open(os.path.join(recdir, 'val.lst')) as f:
        lst = [line.split('\t') for line in f]
    assert sorted(val_labels) == sorted(float(l[1]) for l in lst if 'broken' not in l[2])
    assert data.skipped() == 0


def test_imagenet_rec_deterministic(recdir):
    a = build_data(rec_cfg(recdir), batch_size=16)
    b = build_data(rec_cfg(recdir), batch_size=16)
    ea = collect(a.train.epoch(1))
    assert same_batches(ea, collect(b.train.epoch(1)))
    assert not same_batches(ea, collect(a.train.epoch(2)))


def test_imagenet_rec_two_ranks(recdir):
    parts = [build_data(rec_cfg(recdir, data__shard='rank'), batch_size=16, rank=r,
                        num_ranks=2) for r in range(2)]
    assert [p.num_train for p in parts] == [80, 79]  # dmlc's split: ceil(159 / 2) first
    assert [len(p.train) for p in parts] == [4, 4]
    h = [row_hashes(collect(p.train.epoch(0))) for p in parts]
    assert [len(x) for x in h] == [64, 64]
    whole = collect(build_data(rec_cfg(recdir), batch_size=16, for_training=False)
                    .val.epoch(0))
    got = [b for p in parts for b in collect(p.val.epoch(0))]
    assert [p.num_val for p in parts] == [20, 20]
    assert np.allclose(np.concatenate([d for d, _ in got]),
                       np.concatenate([d for d, _ in whole]))
    # val_samples smaller than a rank's part: rank 0 gets them all
    parts = [build_data(rec_cfg(recdir, data__val_samples=10), batch_size=16, rank=r,
                        num_ranks=2, for_training=False) for r in range(2)]
    assert [p.num_val for p in parts] == [10, 0] and [len(p.val) for p in parts] == [1, 0]
    assert len(collect(parts[0].val.epoch(0))[0][1]) == 10
    assert collect(parts[1].val.epoch(0)) == []


def test_imagenet_rec_missing_files(tmp_path, recdir):
    with pytest.raises(ConfigError, match='data.root.*does not exist'):
        build_data(rec_cfg(str(tmp_path / 'x')), batch_size=8)
    with pytest.raises(ConfigError, match='data.root.*lacks train.rec'):
        build_data(rec_cfg(str(tmp_path)), batch_size=8)
    shutil.copy(os.path.join(recdir, 'val.rec'), str(tmp_path))
    shutil.copy(os.path.join(recdir, 'val.idx'), str(tmp_path))
    data = build_data(rec_cfg(str(tmp_path)), batch_size=8, for_training=False)
    assert data.train is None and data.num_val == N_VAL


def test_rec_corrupt_record_documented(folder, tmp_path):
    """What MXNet 1.9.1's ImageRecordIter does with a record whose payload is garbage.

    --pass-through packs the file bytes as they are, so the broken .jpg becomes a
    corrupt record.  Training settings raise (we turn it into a RuntimeError naming the
    file); validation settings (resize=) kill the process with SIGFPE.  Run in
    subprocesses: neither leaves the process usable.
    """
    root = str(tmp_path)
    for split in ('train', 'val'):
        _im2rec(os.path.join(root, split), os.path.join(folder, split), '--pass-through')
    script = textwrap.dedent('''
        import json, sys
        from hcnet.train.config import load_config
        from hcnet.train.data import build_data
        cfg = load_config(None, ['data.dataset=imagenet_rec', 'data.root=%s',
                                 'data.input_size=32', 'model.classes=3',
                                 'data.num_workers=1'])
        data = build_data(cfg, batch_size=16)
        part = data.train if sys.argv[1] == 'train' else data.val
        try:
            n = sum(d.shape[0] for d, _ in part.epoch(0))
            print('READ', n)
        except RuntimeError as err:
            print('RAISED', err)
    ''' % root)
    env = dict(os.environ, PYTHONPATH=REPO)
    train = subprocess.run([sys.executable, '-c', script, 'train'], capture_output=True,
                           text=True, env=env, timeout=120)
    assert 'RAISED ImageRecordIter failed on' in train.stdout, train.stdout + train.stderr
    assert 'train.rec' in train.stdout
    val = subprocess.run([sys.executable, '-c', script, 'val'], capture_output=True,
                         text=True, env=env, timeout=120)
    assert val.returncode == -signal.SIGFPE, (val.returncode, val.stdout + val.stderr)


# --------------------------------------------------------------------------------------
# a resumed epoch: epoch(e, start=k) yields the batches an uninterrupted pass yields from k

def _check_tail(train, epoch=1, start=3):
    whole = collect(train.epoch(epoch))
    tail = collect(train.epoch(epoch, start=start))
    assert len(whole) > start and same_batches(whole[start:], tail)
    assert collect(train.epoch(epoch, start=len(whole))) == []


def test_synthetic_epoch_from_a_step():
    _check_tail(build_data(synth_cfg(), batch_size=10).train)


@needs_fmnist
def test_fashion_mnist_epoch_from_a_step():
    # augmented (random shifts and flips): the draws are keyed by the batch's position
    _check_tail(build_data(fm_cfg(train__steps_per_epoch=5), batch_size=128).train)


def test_image_folder_epoch_from_a_step(folder):
    _check_tail(build_data(folder_cfg(folder), batch_size=16).train)


def test_imagenet_rec_epoch_from_a_step(recdir):
    _check_tail(build_data(rec_cfg(recdir), batch_size=16).train)


# --------------------------------------------------------------------------------------
# data.shard=node: the ranks of a node share one pass, each node in its own order

def test_synthetic_shard_by_node():
    cfg = synth_cfg(data__shard='node', data__synthetic_samples=96)
    # 4 ranks on 2 nodes of 2
    ranks = [build_data(cfg, batch_size=8, rank=r, num_ranks=4, local_rank=r % 2,
                        local_size=2, node=r // 2) for r in range(4)]
    assert [len(r.train) for r in ranks] == [6] * 4 and ranks[0].num_train == 48
    h = [row_hashes(collect(r.train.epoch(1))) for r in ranks]
    for node in (0, 1):
        a, b = h[2 * node], h[2 * node + 1]
        assert not set(a) & set(b) and len(set(a) | set(b)) == 96   # one pass per node
    assert h[0] + h[1] != h[2] + h[3]                               # in its own order
    # one node holding every rank is rank sharding's split (its own permutation)
    one = [build_data(cfg, batch_size=8, rank=r, num_ranks=2) for r in range(2)]
    a, b = (row_hashes(collect(r.train.epoch(0))) for r in one)
    assert not set(a) & set(b) and len(set(a) | set(b)) == 96


def test_shard_passes_per_epoch():
    from hcnet.train.data import Shard
    # 8 nodes x 8 ranks: each of the 64 ranks reads 1/parts of a pass, so an epoch is
    # 64 / parts passes: node = 8 (the paper's), rank = 1, none = 64
    passes = {mode: 64 / Shard.of(mode, 9, 64, 1, 8, 1).parts for mode in ('node', 'rank', 'none')}
    assert passes == {'node': 8, 'rank': 1, 'none': 64}


def test_imagenet_rec_shard_by_node(recdir):
    # two nodes of one rank each: every rank reads the whole file, in its node's order
    parts = [build_data(rec_cfg(recdir, data__shard='node'), batch_size=16, rank=r,
                        num_ranks=2, local_rank=0, local_size=1, node=r) for r in range(2)]
    assert [p.num_train for p in parts] == [N_TRAIN] * 2
    h = [row_hashes(collect(p.train.epoch(0))) for p in parts]
    assert len(h[0]) == len(h[1]) == (N_TRAIN // 16) * 16 and h[0] != h[1]


def test_shard_by_rank_is_refused_with_its_replacement():
    with pytest.raises(ConfigError, match=r'data.shard_by_rank is gone: use data.shard '
                                          r'\(true was data.shard=rank'):
        load_config(None, ['data.shard_by_rank=true'])


def test_imagenet_rec_pins_on_the_processs_own_gpu(recdir, monkeypatch):
    """ImageRecordIter's device_id: the GPU of the rank (Horovod's example passes its local
    rank), -1 (plain memory) on a CPU run -- MXNet's default 0 pins every rank on GPU 0."""
    from hcnet.train import loop
    seen = []
    real = mx.io.ImageRecordIter

    def spy(**kwargs):
        seen.append(kwargs['device_id'])
        return real(**dict(kwargs, device_id=-1))        # no GPU here to pin on
    monkeypatch.setattr(mx.io, 'ImageRecordIter', spy)
    for ctx in ([mx.cpu()], [mx.gpu(3)], [mx.gpu(1), mx.gpu(2)]):
        data = build_data(rec_cfg(recdir), batch_size=16,
                          pinned_device=loop.pinned_device(ctx))
        collect(data.train.epoch(0))
        collect(data.val.epoch(0))
    assert seen == [-1, -1, 3, 3, 1, 1]
