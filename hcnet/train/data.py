"""Data pipelines of the trainer: ``build_data(cfg, batch_size=..., rank=..., num_ranks=...)``.

Four datasets (``data.dataset``), one interface (:class:`DataBundle`):

* ``synthetic``     random images and labels generated once with numpy (smoke tests,
                    throughput measurements);
* ``fashion_mnist`` the IDX ``.gz`` files (e.g. Debian's ``/usr/share/datasets/fashion-mnist``),
                    held in memory as uint8 and batched with vectorised numpy / OpenCV ops;
* ``image_folder``  ``root/{train,val}/<class>/*.jpg`` decoded with OpenCV in a Gluon
                    ``DataLoader`` (worker processes); broken files are skipped and counted;
* ``imagenet_rec``  ``root/{train,val}.{rec,idx}`` read with ``mx.io.ImageRecordIter``
                    (the GluonCV ImageNet recipe).

``bundle.train.epoch(e)`` / ``bundle.val.epoch(0)`` yield ``(data, label)`` NDArrays on
``mx.cpu()``: data float32 NCHW, RGB scaled to [0, 1] then normalised with
``data.mean`` / ``data.std``; label float32 of shape ``(batch,)``.

Sharding (``data.shard``) says which unit passes over the whole training set once per
epoch (:class:`Shard`): ``rank`` -- the job: one permutation of ``(train.seed, e)`` shared
by all ranks, each rank takes its strided share (every N-th image, offset by its rank);
``node`` -- each node (Horovod's ``cross_rank``): a permutation of ``(train.seed, e, node)``
shared by the node's ranks, each takes its strided share by ``local_rank`` (the paper's
"80 epochs, equivalent to 640 on a single node" with 8 nodes); ``none`` -- each rank:
a permutation of ``(train.seed, e, rank)`` of the whole set.

Determinism.  The training order of epoch ``e`` is a function of the seed, ``e`` and the
shard's key above; augmentation randomness is a function of ``(train.seed, e, rank)`` and the
batch / position inside the epoch -- never of the global RNG state, of the number of
worker processes or of what happened in earlier epochs, so a run resumed at epoch ``e``
sees exactly the batches an uninterrupted run sees.  ``len(train)`` (batches per epoch,
last incomplete batch dropped) is the same on every rank.  Validation is split into
disjoint contiguous parts, one per rank, covering the set (or its first
``data.val_samples`` images) exactly once.

Per-dataset deviations from that picture:

* ``image_folder``: a training batch keeps its size when an image fails to decode (the
  hole is filled with a copy of a good image of the same batch; only a batch with no
  decodable image at all is dropped, and the epoch is one step shorter); validation
  batches drop the image.  "The first ``data.val_samples``" validation images are the
  first of a fixed pseudo-random order (seed 0), so a subset covers every class.
* ``imagenet_rec``: with ``rank`` / ``node`` sharding each rank reads a *fixed* contiguous
  1/N part of ``train.rec`` (N ranks of the job / of the node) (MXNet's ``num_parts`` / ``part_index``; im2rec lists are
  shuffled, so parts are random subsets), reshuffled every epoch -- not a fresh split
  of a shared permutation.  Parts can differ by one image; all ranks run
  ``min(part) // batch`` steps.  Augmentation is reproducible through ImageRecordIter's
  ``seed_aug``, which reseeds per *position in the batch*: within one epoch, position
  ``i`` of every batch draws from the same random stream (it changes with epoch and
  rank).  A corrupt record is fatal (see the comment above :func:`_count_idx`).
"""
import dataclasses
import gzip
import logging
import math
import os
import struct

import numpy as np
import mxnet as mx

from .config import ConfigError

__all__ = ['build_data', 'DataBundle', 'read_idx', 'eval_resize_size', 'IMAGE_EXTENSIONS']

log = logging.getLogger('hcnet.data')

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')

# Distinct first words of the seed sequences, so that the streams never collide.
_ORDER_SHARED, _ORDER_RANK, _AUGMENT, _SYNTH_TRAIN, _SYNTH_VAL, _ORDER_NODE = 1, 2, 3, 4, 5, 6
_U32 = 0xFFFFFFFF


def _rng(*key):
    """A numpy Generator that is a pure function of the non-negative integers ``key``."""
    return np.random.default_rng([int(k) & _U32 for k in key])


def _seed31(*key):
    """A seed in [0, 2**31) that is a pure function of ``key`` (for MXNet's C++ iterators)."""
    return int(np.random.SeedSequence([int(k) & _U32 for k in key]).generate_state(1)[0]
               % (2 ** 31))


def eval_resize_size(input_size, crop_ratio):
    """Evaluation resize of the shorter side: ceil(input_size / crop_ratio), as GluonCV."""
    return int(math.ceil(input_size / crop_ratio - 1e-6))


# --------------------------------------------------------------------------------------
# public result

class _Skips:
    """Counts skipped (corrupt / undecodable) images; warns once per file."""

    def __init__(self):
        self.count = 0
        self.files = set()

    def add(self, paths):
        for path in paths:
            self.count += 1
            if path not in self.files:
                self.files.add(path)
                log.warning('skipping corrupt or undecodable image %s', path)


class DataBundle:
    """What :func:`build_data` returns.

    ``train`` (``None`` when ``for_training=False``) and ``val`` are pipelines with
    ``len(p)`` = batches per epoch and ``p.epoch(e)`` = iterator of ``(data, label)``.
    ``num_classes`` is what the dataset itself defines (``model.classes`` for
    ``synthetic``, 10 for ``fashion_mnist``, the class folders of ``image_folder``) or
    ``None`` when the files do not tell (``imagenet_rec``).
    ``num_train`` / ``num_val`` are the images this rank iterates per epoch;
    ``skipped()`` the number of corrupt images skipped so far (every skip counts, so a
    broken training file counts once per epoch). ``close()`` stops the worker processes
    of ``image_folder``'s loaders (the trainer and ``hcnet eval`` call it when done).
    """

    def __init__(self, train, val, num_classes, num_train, num_val, skips, closers=()):
        self.train = train
        self.val = val
        self.num_classes = num_classes
        self.num_train = num_train
        self.num_val = num_val
        self._skips = skips
        self._closers = list(closers)

    def skipped(self):
        return self._skips.count

    def skipped_files(self):
        """The distinct files skipped so far (sorted)."""
        return sorted(self._skips.files)

    def close(self):
        """Stop worker processes now (they also stop when the bundle is garbage-collected);
    idempotent."""
        for close in self._closers:
            close()
        self._closers = []

    def __repr__(self):
        return ('DataBundle(train=%s batches, val=%d batches, classes=%s, num_train=%d, '
                'num_val=%d)' % (len(self.train) if self.train is not None else None,
                                 len(self.val), self.num_classes, self.num_train,
                                 self.num_val))


# --------------------------------------------------------------------------------------
# order and partitioning (shared by every dataset except imagenet_rec, which leaves
# it to ImageRecordIter)

SHARD_MODES = ('rank', 'node', 'none')


@dataclasses.dataclass(frozen=True)
class Shard:
    """This rank's share of an epoch: part ``part`` of ``parts`` of a permutation drawn
    from ``order`` (the first word of its seed, then the words that make it differ:
    none for the job, the node, the rank)."""
    part: int
    parts: int
    order: tuple

    @classmethod
    def of(cls, mode, rank=0, num_ranks=1, local_rank=None, local_size=None, node=0):
        """The share of ``rank`` under ``data.shard`` = ``mode`` (see the module docstring);
        ``local_rank`` / ``local_size`` / ``node`` place the rank on its node (default: one
        node holds every rank)."""
        if mode == 'rank':
            return cls(rank, num_ranks, (_ORDER_SHARED,))
        if mode == 'node':
            local_rank = rank if local_rank is None else local_rank
            local_size = num_ranks if local_size is None else local_size
            return cls(local_rank, local_size, (_ORDER_NODE, node))
        if mode == 'none':
            return cls(0, 1, (_ORDER_RANK, rank))
        raise ValueError('data.shard = %r is not one of %s' % (mode, ', '.join(SHARD_MODES)))


def _train_split(n, shard):
    """Images per rank per epoch."""
    return n // shard.parts


def _train_indices(n, seed, epoch, shard):
    """This rank's sample indices for ``epoch`` (before dropping the incomplete batch)."""
    perm = _rng(shard.order[0], seed, epoch, *shard.order[1:]).permutation(n)
    if shard.parts == 1:
        return perm
    # strided, so that step k of all ranks together reads the same images as step k
    # of one process with `parts` times the batch (gradient-equivalent runs)
    return perm[shard.part::shard.parts][:n // shard.parts]


def _val_range(n, rank, num_ranks):
    """Contiguous disjoint parts that cover [0, n) exactly once."""
    return rank * n // num_ranks, (rank + 1) * n // num_ranks


def _val_count(cfg, n):
    """Validation images used: all ``n``, or the first ``data.val_samples`` (positive or
    null, a rule of the config schema)."""
    m = cfg['data.val_samples']
    return n if m is None else min(m, n)


# --------------------------------------------------------------------------------------
# config helpers

def _source(cfg, key):
    return cfg.source(key) if hasattr(cfg, 'source') else 'config'


def _cfg_error(cfg, key, message):
    return ConfigError('%s: %s %s' % (_source(cfg, key), key, message))


def _root_error(cfg, path, what):
    return ConfigError('data.root: %s %s (data.root set by %s)'
                       % (path, what, _source(cfg, 'data.root')))


def _root(cfg):
    root = os.path.abspath(os.path.expanduser(cfg['data.root']))
    if not os.path.isdir(root):
        raise _root_error(cfg, root, 'does not exist' if not os.path.exists(root)
                          else 'is not a directory')
    return root


def _need_file(cfg, root, name):
    path = os.path.join(root, name)
    if not os.path.isfile(path):
        raise _root_error(cfg, root, 'lacks %s' % name)
    return path


def _mean_std(cfg):
    """``data.mean`` and ``data.std`` as float32 arrays (3 numbers each, std positive:
    rules of :func:`hcnet.train.config.validate`)."""
    return [np.asarray(cfg[key], dtype=np.float32) for key in ('data.mean', 'data.std')]


class _Normalizer:
    """uint8 (0-255) -> float32 (x / 255 - mean) / std, as one multiply-add per channel."""

    def __init__(self, mean, std):
        self.scale = (1.0 / (255.0 * std)).astype(np.float32)
        self.shift = (-mean / std).astype(np.float32)

    def gray_to_nchw(self, x):
        """(B, H, W) uint8 -> (B, 3, H, W) float32 (one channel repeated)."""
        return (x[:, None].astype(np.float32) * self.scale[None, :, None, None]
                + self.shift[None, :, None, None])

    def nchw(self, x):
        """(B, 3, H, W) uint8 -> (B, 3, H, W) float32."""
        return (x.astype(np.float32) * self.scale[None, :, None, None]
                + self.shift[None, :, None, None])

    def hwc_float_to_chw(self, x):
        """(H, W, 3) float32 on the 0-255 scale -> (3, H, W) float32."""
        x = x * self.scale + self.shift
        return np.ascontiguousarray(x.transpose(2, 0, 1))


# --------------------------------------------------------------------------------------
# in-memory pipelines (synthetic, fashion_mnist)

def _nd(x):
    """A fresh numpy batch -> NDArray on mx.cpu() without copying (MXNet's copy of a
    38 MB batch takes ~4x as long as building it)."""
    return mx.nd.from_numpy(np.ascontiguousarray(x, dtype=np.float32), zero_copy=True)


class _ArrayTrain:
    """Training batches from an in-memory dataset; ``make(indices, rng)`` builds a batch."""

    def __init__(self, n, labels, make, batch_size, seed, rank, shard):
        self._n, self._labels, self._make = n, labels, make
        self._batch, self._seed = batch_size, seed
        self._rank, self._shard = rank, shard
        self.dataset_size = n
        self.num_images = _train_split(n, shard)
        self._len = self.num_images // batch_size

    def __len__(self):
        return self._len

    def epoch(self, epoch, start=0):
        """The batches of ``epoch`` from batch ``start`` on (a resumed epoch skips the
        ``start`` batches done before): the same batches an uninterrupted pass yields."""
        idx = _train_indices(self._n, self._seed, epoch, self._shard)
        return self._iterate(idx, epoch, start)

    def _iterate(self, idx, epoch, start):
        b = self._batch
        for i in range(start, self._len):
            sel = idx[i * b:(i + 1) * b]
            # a generator per batch: batch i does not depend on earlier batches' draws
            rng = _rng(_AUGMENT, self._seed, epoch, self._rank, i)
            yield _nd(self._make(sel, rng)), _nd(self._labels[sel])


class _ArrayVal:
    """Validation batches of the contiguous range [lo, hi) of an in-memory dataset."""

    def __init__(self, lo, hi, labels, make, batch_size):
        self._lo, self._hi, self._labels, self._make = lo, hi, labels, make
        self._batch = batch_size
        self.num_images = hi - lo
        self._len = -(-self.num_images // batch_size)

    def __len__(self):
        return self._len

    def epoch(self, epoch=0):
        for start in range(self._lo, self._hi, self._batch):
            sel = np.arange(start, min(start + self._batch, self._hi))
            yield _nd(self._make(sel)), _nd(self._labels[sel])


def _synthetic(cfg, batch_size, rank, num_ranks, shard, for_training, norm):
    size, classes, seed = cfg['data.input_size'], cfg['model.classes'], cfg['train.seed']
    n_train = cfg['data.synthetic_samples']
    n_val = _val_count(cfg, max(batch_size, n_train // 10))
    # At most ~64 MB of distinct (normalised float32) images per split; images beyond
    # repeat (labels don't).  Batches are one NDArray gather: fast enough to measure
    # training throughput with.
    pool_cap = max(1, (64 << 20) // (4 * 3 * size * size))

    def make_split(key, n):
        rng = _rng(key, seed)
        labels = rng.integers(0, classes, n).astype(np.float32)
        pool = rng.integers(0, 256, (min(n, pool_cap), 3, size, size), dtype=np.uint8)
        pool = norm.nchw(pool)
        return labels, (lambda sel: pool[sel % len(pool)])

    train = None
    if for_training:
        labels, make_train = make_split(_SYNTH_TRAIN, n_train)
        train = _ArrayTrain(n_train, labels, lambda sel, rng: make_train(sel), batch_size,
                            seed, rank, shard)
    labels, make_val = make_split(_SYNTH_VAL, n_val)
    val = _ArrayVal(*_val_range(n_val, rank, num_ranks), labels, make_val, batch_size)
    return train, val, classes


# fashion_mnist ------------------------------------------------------------------------

FASHION_FILES = {True: ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
                 False: ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')}


def read_idx(path):
    """Read an IDX file (``.gz`` or plain) into a numpy uint8 array.

    Used instead of ``mxnet.gluon.data.vision.FashionMNIST``: that class checks the
    SHA-1 of each ``.gz`` against the copy on MXNet's S3 bucket, and Debian's
    ``dataset-fashion-mnist`` files are compressed differently (same content, other
    SHA-1), so Gluon tries to *download* them again into ``root`` (and fails offline).
    """
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack('>HBB', raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError('%s is not an unsigned-byte IDX file' % path)
    shape = struct.unpack('>' + 'I' * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError('%s: expected %s values, found %d' % (path, shape, data.size))
    return data.reshape(shape)


def _read_fashion(cfg, root, train):
    images_name, labels_name = FASHION_FILES[train]
    images = read_idx(_need_file(cfg, root, images_name))
    labels = read_idx(_need_file(cfg, root, labels_name))
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError('%s: %s and %s do not match (%s vs %s)'
                         % (root, images_name, labels_name, images.shape, labels.shape))
    return images, labels.astype(np.float32)


def _resize_gray(imgs, height, width):
    """(B, h, w) uint8 -> (B, height, width) uint8, bilinear; one cv2 call per 512 images."""
    import cv2
    if imgs.shape[1:] == (height, width):
        return imgs
    out = np.empty((len(imgs), height, width), dtype=np.uint8)
    for s in range(0, len(imgs), 512):  # OpenCV handles up to 512 channels
        chunk = np.ascontiguousarray(imgs[s:s + 512].transpose(1, 2, 0))
        res = cv2.resize(chunk, (width, height), interpolation=cv2.INTER_LINEAR)
        out[s:s + 512] = (res[:, :, None] if res.ndim == 2 else res).transpose(2, 0, 1)
    return out


def _shift_flip(imgs, pad, rng):
    """Random translation by up to ``pad`` pixels (zero padding) and horizontal flip.

    Vectorised: one fancy-indexing gather for the whole batch.
    """
    b, h, w = imgs.shape
    padded = np.zeros((b, h + 2 * pad, w + 2 * pad), dtype=imgs.dtype)
    padded[:, pad:pad + h, pad:pad + w] = imgs
    oy = rng.integers(0, 2 * pad + 1, b)
    ox = rng.integers(0, 2 * pad + 1, b)
    flip = rng.random(b) < 0.5
    rows = oy[:, None] + np.arange(h)
    cols = ox[:, None] + np.arange(w)
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _fashion_mnist(cfg, batch_size, rank, num_ranks, shard, for_training, norm):
    root = _root(cfg)
    size = cfg['data.input_size']
    resize = eval_resize_size(size, cfg['data.crop_ratio'])
    top = (resize - size) // 2
    pad = min(4, max(2, size // 8))
    seed = cfg['train.seed']

    train = None
    if for_training:
        images, labels = _read_fashion(cfg, root, True)

        def make_train(sel, rng):
            x = _resize_gray(images[sel], size, size)
            return norm.gray_to_nchw(_shift_flip(x, pad, rng))

        train = _ArrayTrain(len(images), labels, make_train, batch_size, seed, rank, shard)

    v_images, v_labels = _read_fashion(cfg, root, False)
    n_val = _val_count(cfg, len(v_images))

    def make_val(sel):
        x = _resize_gray(v_images[sel], resize, resize)[:, top:top + size, top:top + size]
        return norm.gray_to_nchw(x)

    val = _ArrayVal(*_val_range(n_val, rank, num_ranks), v_labels, make_val, batch_size)
    return train, val, 10


# --------------------------------------------------------------------------------------
# image_folder: OpenCV decoding in a Gluon DataLoader, robust to broken files

_EIGVAL = np.array([55.46, 4.794, 1.148], dtype=np.float32)
_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                    [-0.5808, -0.0045, -0.8140],
                    [-0.5836, -0.6948, 0.4203]], dtype=np.float32)
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _random_resized_crop(img, size, min_area, rs):
    """GluonCV / ``mx.image.random_size_crop``: area in [min_area, 1], ratio 3/4..4/3."""
    import cv2
    h, w = img.shape[:2]
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = rs.uniform(min_area, 1.0) * h * w
        ratio = math.exp(rs.uniform(*log_ratio))
        nw = int(round(math.sqrt(target * ratio)))
        nh = int(round(math.sqrt(target / ratio)))
        if 0 < nw <= w and 0 < nh <= h:
            x0 = rs.randint(0, w - nw + 1)
            y0 = rs.randint(0, h - nh + 1)
            crop = img[y0:y0 + nh, x0:x0 + nw]
            break
    else:  # fall back to the largest centred square
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        crop = img[y0:y0 + s, x0:x0 + s]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)


def _color_jitter(x, amount, rs):
    """Brightness, contrast, saturation (each 1 +- amount) in random order (mx.image)."""
    order = [0, 1, 2]
    rs.shuffle(order)
    for op in order:
        alpha = 1.0 + rs.uniform(-amount, amount)
        if op == 0:
            x = x * alpha
        elif op == 1:
            x = x * alpha + (1.0 - alpha) * float((x @ _GRAY).mean())
        else:
            x = x * alpha + (1.0 - alpha) * (x @ _GRAY)[:, :, None]
    return x


def _lighting(x, std, rs):
    """AlexNet PCA lighting noise (ImageNet eigenvectors, 0-255 scale)."""
    alpha = rs.normal(0, std, 3).astype(np.float32)
    return x + _EIGVEC @ (alpha * _EIGVAL)


def _resize_short_center_crop(img, resize, size):
    import cv2
    h, w = img.shape[:2]
    if h > w:
        nw, nh = resize, int(h * resize / w)
    else:
        nw, nh = int(w * resize / h), resize
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    y0, x0 = (nh - size) // 2, (nw - size) // 2
    return img[y0:y0 + size, x0:x0 + size]


class _FolderDataset:
    """(path, label) items; ``ds[(i, aug_key)]`` -> (CHW float32 or None, label, path).

    ``aug_key`` None: evaluation transform; otherwise a tuple of integers that seeds a
    ``np.random.RandomState`` for this image alone (so the result does not depend on
    which worker process decodes it).  Any failure (unreadable, undecodable, degenerate
    image) returns ``None`` instead of raising; the batchify function drops it.
    """

    def __init__(self, items, size, resize, min_area, jitter, pca, norm):
        self.items = items
        self.size, self.resize, self.min_area = size, resize, min_area
        self.jitter, self.pca, self.norm = jitter, pca, norm

    def __len__(self):
        return len(self.items)

    def __getitem__(self, key):
        idx, aug_key = key
        path, label = self.items[idx]
        try:
            import cv2
            img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
            if img is None or img.size == 0:
                return None, label, path
            img = img[:, :, ::-1]  # BGR -> RGB
            if aug_key is None:
                out = _resize_short_center_crop(img, self.resize, self.size)
                out = self.norm.hwc_float_to_chw(out.astype(np.float32))
            else:
                rs = np.random.RandomState([k & _U32 for k in aug_key])
                out = _random_resized_crop(img, self.size, self.min_area, rs)
                if rs.rand() < 0.5:
                    out = out[:, ::-1]
                out = out.astype(np.float32)
                if self.jitter > 0:
                    out = _color_jitter(out, self.jitter, rs)
                if self.pca > 0:
                    out = _lighting(out, self.pca, rs)
                out = self.norm.hwc_float_to_chw(out)
            return out, label, path
        except Exception:  # pylint: disable=broad-except
            return None, label, path


class _Collate:
    """Batchify: stack the good images, report the bad ones' paths.

    ``fill=True`` (training) keeps the batch size: every dropped image is replaced by a
    copy of a good image of the same batch (fixed shapes for hybridized nets and
    ``split_and_load`` over several devices).  ``fill=False`` (validation) drops them.
    Returns ``(data, label, bad_paths)``, ``data`` None if nothing in the batch decoded.
    """

    def __init__(self, shared, fill):
        self.shared, self.fill = shared, fill

    def __call__(self, samples):
        good = [s for s in samples if s[0] is not None]
        bad = tuple(s[2] for s in samples if s[0] is None)
        if not good:
            return None, None, bad
        if self.fill and bad:
            good = good + [good[i % len(good)] for i in range(len(bad))]
        ctx = mx.Context('cpu_shared', 0) if self.shared else mx.cpu()
        data = mx.nd.array(np.stack([s[0] for s in good]), ctx=ctx, dtype='float32')
        label = mx.nd.array(np.array([s[1] for s in good], dtype=np.float32), ctx=ctx,
                            dtype='float32')
        return data, label, bad


class _BatchList:
    """Batch sampler whose batches are replaced before every pass."""

    def __init__(self):
        self.batches = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


class _FolderTrain:
    def __init__(self, loader, sampler, n, offset, batch_size, seed, rank, shard, skips):
        self._loader, self._sampler, self._n, self._offset = loader, sampler, n, offset
        self._batch, self._seed = batch_size, seed
        self._rank, self._shard = rank, shard
        self._skips = skips
        self.dataset_size = n
        self.num_images = _train_split(n, shard)
        self._len = self.num_images // batch_size

    def __len__(self):
        return self._len

    def epoch(self, epoch, start=0):
        """The batches of ``epoch`` from batch ``start`` on (augmentation is keyed by the
        batch's position, so skipped batches change nothing after them)."""
        idx = _train_indices(self._n, self._seed, epoch, self._shard)
        b = self._batch
        batches = [[(int(self._offset + idx[i * b + j]), (self._seed, epoch, self._rank, i, j))
                    for j in range(b)] for i in range(start, self._len)]
        return _run_loader(self._loader, self._sampler, batches, self._skips)


class _FolderVal:
    def __init__(self, loader, sampler, lo, hi, offset, order, batch_size, skips):
        self._loader, self._sampler, self._skips = loader, sampler, skips
        self._keys = [(int(offset + order[i]), None) for i in range(lo, hi)]
        self._batch = batch_size
        self.num_images = hi - lo
        self._len = -(-self.num_images // batch_size)

    def __len__(self):
        return self._len

    def epoch(self, epoch=0):
        b = self._batch
        batches = [self._keys[s:s + b] for s in range(0, len(self._keys), b)]
        return _run_loader(self._loader, self._sampler, batches, self._skips)


def _run_loader(loader, sampler, batches, skips):
    sampler.batches = batches  # read by iter(loader) below, when iteration starts
    for data, label, bad in loader:
        skips.add(bad)
        if data is None:
            continue
        yield data.as_in_context(mx.cpu()), label.as_in_context(mx.cpu())


def _scan_split(cfg, root, split, classes):
    """Sorted (path, label) of ``root/split/<class>/*`` (files directly in the folder)."""
    base = os.path.join(root, split)
    items = []
    for label, name in enumerate(classes):
        folder = os.path.join(base, name)
        if not os.path.isdir(folder):
            continue
        for fname in sorted(os.listdir(folder)):
            if fname.lower().endswith(IMAGE_EXTENSIONS):
                items.append((os.path.join(folder, fname), label))
    if not items:
        raise _root_error(cfg, root, 'has no images under %s/<class>/' % split)
    return items


def _class_dirs(path):
    """Class folders: subdirectories that hold at least one image (an empty one is no class)."""
    def has_images(folder):
        return any(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(folder))
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and has_images(e.path))


def _image_folder(cfg, batch_size, rank, num_ranks, shard, for_training, norm, skips, closers):
    root = _root(cfg)
    train_dir, val_dir = os.path.join(root, 'train'), os.path.join(root, 'val')
    if not os.path.isdir(val_dir):
        raise _root_error(cfg, root, 'lacks val/')
    if for_training and not os.path.isdir(train_dir):
        raise _root_error(cfg, root, 'lacks train/')
    # The class list comes from train/ (directory names only: no training file is read
    # when for_training=False), so that label numbers match the trained model.
    classes = _class_dirs(train_dir if os.path.isdir(train_dir) else val_dir)
    extra = sorted(set(_class_dirs(val_dir)) - set(classes))
    if extra:
        raise _root_error(cfg, root, 'has val/ classes missing from train/: %s'
                          % ', '.join(extra[:5]))

    train_items = _scan_split(cfg, root, 'train', classes) if for_training else []
    val_items = _scan_split(cfg, root, 'val', classes)
    # "The first data.val_samples images" are the first of a fixed pseudo-random order
    # (independent of train.seed), so that a subset covers every class.
    val_order = np.random.RandomState(0).permutation(len(val_items))
    n_val = _val_count(cfg, len(val_items))

    size = cfg['data.input_size']
    dataset = _FolderDataset(train_items + val_items, size,
                             eval_resize_size(size, cfg['data.crop_ratio']),
                             cfg['data.random_crop_scale'], cfg['data.color_jitter'],
                             cfg['data.pca_noise'], norm)
    workers = cfg['data.num_workers']
    if workers > 0:
        # OpenCV's pthreads pool is not fork-safe: a worker process forked after the parent
        # used the pool hangs forever in cv2 (seen in cv2.setNumThreads and resize).  One
        # thread per process, set before forking, avoids the pool altogether -- and with
        # one decoding process per core there is nothing to gain from it anyway.
        import cv2
        cv2.setNumThreads(1)

    def make_loader(fill):
        # One DataLoader (one worker pool) per split; worker processes are forked here.
        sampler = _BatchList()
        loader = mx.gluon.data.DataLoader(dataset, batch_sampler=sampler,
                                          batchify_fn=_Collate(workers > 0, fill),
                                          num_workers=workers, timeout=600)
        if workers > 0:
            closers.append(loader._worker_pool.terminate)  # pylint: disable=protected-access
        return loader, sampler

    train = None
    if for_training:
        loader, sampler = make_loader(True)
        train = _FolderTrain(loader, sampler, len(train_items), 0, batch_size,
                             cfg['train.seed'], rank, shard, skips)
    loader, sampler = make_loader(False)
    val = _FolderVal(loader, sampler, *_val_range(n_val, rank, num_ranks), len(train_items),
                     val_order, batch_size, skips)
    return train, val, len(classes)


# --------------------------------------------------------------------------------------
# imagenet_rec: mx.io.ImageRecordIter (GluonCV's ImageNet recipe)
#
# Corrupt records.  ImageRecordIter cannot skip an undecodable image (measured with
# MXNet 1.9.1, tests/test_data.py::test_rec_corrupt_record_documented):
#  * training settings (random_resized_crop): next() -- or the constructor, which decodes
#    the first batch -- raises MXNetError "(-215:Assertion failed) !ssize.empty() in
#    function 'resize'", and every later next() raises it again: the epoch is lost;
#    :class:`_RecTrain` re-raises it as a RuntimeError naming the file.
#  * validation settings (resize=...): the process dies with SIGFPE (floating point
#    exception, exit status 136) -- nothing Python can catch.
# Nothing is pre-validated (that would mean decoding the whole set); re-pack the .rec
# if it happens.  skipped() therefore stays 0 for this dataset.

def _count_idx(path):
    with open(path, 'rb') as f:
        return sum(1 for line in f if line.strip())


def _rec_parts(n, num_parts):
    """Records per part as dmlc's IndexedRecordIOSplitter partitions an indexed .rec."""
    step = -(-n // num_parts)
    return [(min(n, r * step), min(n, (r + 1) * step)) for r in range(num_parts)]


class _RecPipeline:
    def __init__(self, rec, idx, common, batch_size):
        self._rec, self._idx, self._common, self._batch = rec, idx, common, batch_size

    def _iter(self, **kwargs):
        try:
            return mx.io.ImageRecordIter(path_imgrec=self._rec, path_imgidx=self._idx,
                                         batch_size=self._batch, **self._common, **kwargs)
        except mx.base.MXNetError as err:
            raise _rec_error(self._rec, err) from None


def _rec_error(path, err):
    return RuntimeError('ImageRecordIter failed on %s (a corrupt record? ImageRecordIter '
                        'cannot skip undecodable images; re-pack the file): %s'
                        % (path, str(err).strip().splitlines()[-1]))


class _RecTrain(_RecPipeline):
    def __init__(self, rec, idx, common, aug, batch_size, n, seed, rank, shard):
        super().__init__(rec, idx, common, batch_size)
        self._aug, self._seed, self._rank, self._shard = aug, seed, rank, shard
        parts = _rec_parts(n, shard.parts)
        lo, hi = parts[shard.part]
        self.dataset_size = n
        self.num_images = hi - lo
        self._len = min(b - a for a, b in parts) // batch_size  # same on every rank

    def __len__(self):
        return self._len

    def epoch(self, epoch, start=0):
        """The batches of ``epoch`` from batch ``start`` on. ImageRecordIter cannot seek:
        the first ``start`` batches are decoded and dropped (the same order and
        augmentation as an uninterrupted pass, at the cost of reading them)."""
        if self._len <= start:
            return iter(())
        # A fresh iterator per epoch: order (seed) and augmentation (seed_aug) are then a
        # function of (train.seed, epoch[, rank]) only.  With seed_aug, ImageRecordIter
        # reseeds the augmenter per image from (seed_aug, position in batch).
        shard = self._shard
        kw = dict(seed=_seed31(shard.order[0], self._seed, epoch, *shard.order[1:]))
        if shard.parts > 1:
            kw.update(num_parts=shard.parts, part_index=shard.part)
        kw['seed_aug'] = _seed31(_AUGMENT, self._seed, epoch, self._rank) % (2 ** 30)
        return self._run(self._iter(shuffle=True, round_batch=True, **kw, **self._aug), start)

    def _run(self, it, start=0):
        try:
            for i in range(self._len):
                try:
                    batch = it.next()
                except StopIteration:
                    return
                except mx.base.MXNetError as err:
                    raise _rec_error(self._rec, err) from None
                if batch.pad:
                    return
                if i < start:
                    continue
                # No copy out of the iterator's (pinned, on GPU runs) buffers, as GluonCV's
                # and Horovod's scripts: the prefetcher recycles a buffer prefetch_buffer (4)
                # batches later and waits for the reads pending on it first, so a batch
                # stays valid while the step that uses it runs. (Keep a copy to hold batches
                # longer than that.)
                yield batch.data[0], batch.label[0]
        finally:
            del it


class _RecVal(_RecPipeline):
    def __init__(self, rec, idx, common, batch_size, n, n_val, rank, num_ranks):
        super().__init__(rec, idx, common, batch_size)
        self._num_ranks, self._rank = num_ranks, rank
        lo, hi = _rec_parts(n, num_ranks)[rank]
        # the first n_val images of the file: each rank keeps its part's share
        self.num_images = max(0, min(hi, n_val) - lo)
        self._len = -(-self.num_images // batch_size)

    def __len__(self):
        return self._len

    def epoch(self, epoch=0):
        if self.num_images == 0:  # (an empty part would make ImageRecordIter read all)
            return iter(())
        return self._run(self._iter(shuffle=False, round_batch=False,
                                    num_parts=self._num_ranks, part_index=self._rank))

    def _run(self, it):
        left = self.num_images
        try:
            while left > 0:
                try:
                    batch = it.next()
                except StopIteration:
                    return
                except mx.base.MXNetError as err:
                    raise _rec_error(self._rec, err) from None
                k = min(left, batch.data[0].shape[0] - batch.pad)
                left -= k
                yield (batch.data[0][:k].copyto(mx.cpu()),
                       batch.label[0][:k].copyto(mx.cpu()))
        finally:
            del it


def _imagenet_rec(cfg, batch_size, rank, num_ranks, shard, for_training, mean, std,
                  pinned_device):
    root = _root(cfg)
    size = cfg['data.input_size']
    # device_id: where the iterator's buffers live -- pinned memory of this process's GPU
    # (MXNet's default, 0, would pin every rank's batches on GPU 0: Horovod's example
    # passes its local rank), plain memory (-1) on CPU runs
    common = dict(data_shape=(3, size, size), preprocess_threads=max(1, cfg['data.num_workers']),
                  verbose=False, device_id=pinned_device,
                  mean_r=float(mean[0]) * 255, mean_g=float(mean[1]) * 255,
                  mean_b=float(mean[2]) * 255,
                  std_r=float(std[0]) * 255, std_g=float(std[1]) * 255,
                  std_b=float(std[2]) * 255)
    train = None
    if for_training:
        rec, idx = _need_file(cfg, root, 'train.rec'), _need_file(cfg, root, 'train.idx')
        jitter = float(cfg['data.color_jitter'])
        aug = dict(rand_mirror=True, random_resized_crop=True,
                   max_aspect_ratio=4. / 3., min_aspect_ratio=3. / 4.,
                   max_random_area=1.0, min_random_area=float(cfg['data.random_crop_scale']),
                   brightness=jitter, contrast=jitter, saturation=jitter,
                   pca_noise=float(cfg['data.pca_noise']))
        train = _RecTrain(rec, idx, common, aug, batch_size, _count_idx(idx),
                          cfg['train.seed'], rank, shard)
    rec, idx = _need_file(cfg, root, 'val.rec'), _need_file(cfg, root, 'val.idx')
    n = _count_idx(idx)
    val_common = dict(common, resize=eval_resize_size(size, cfg['data.crop_ratio']))
    val = _RecVal(rec, idx, val_common, batch_size, n, _val_count(cfg, n), rank, num_ranks)
    # A .rec file does not record its number of classes (counting them means reading every
    # record): unknown. The trainer checks every batch's labels against model.classes.
    return train, val, None


# --------------------------------------------------------------------------------------

def build_data(cfg, *, batch_size, rank=0, num_ranks=1, local_rank=None, local_size=None,
               node=0, pinned_device=-1, for_training=True):
    """Build the training (unless ``for_training=False``) and validation pipelines.

    ``batch_size`` is images per step for this process; ``rank`` / ``num_ranks`` the
    distributed position, ``local_rank`` / ``local_size`` / ``node`` where the rank sits
    (default: every rank on one node), for ``data.shard`` (:class:`Shard`);
    ``pinned_device`` the GPU whose pinned memory ``imagenet_rec`` batches are read into
    (-1: none, a CPU run).  Raises :class:`ConfigError` (naming ``data.root``) if the
    dataset files are missing.
    """
    if batch_size < 1:
        raise ValueError('batch_size must be positive, got %r' % batch_size)
    if not 0 <= rank < num_ranks:
        raise ValueError('rank %r is not in [0, %r)' % (rank, num_ranks))
    mean, std = _mean_std(cfg)
    norm = _Normalizer(mean, std)
    skips = _Skips()
    closers = []
    name = cfg['data.dataset']
    shard = Shard.of(cfg['data.shard'], rank, num_ranks, local_rank, local_size, node)
    if name == 'synthetic':
        train, val, classes = _synthetic(cfg, batch_size, rank, num_ranks, shard, for_training,
                                         norm)
    elif name == 'fashion_mnist':
        train, val, classes = _fashion_mnist(cfg, batch_size, rank, num_ranks, shard,
                                             for_training, norm)
    elif name == 'image_folder':
        train, val, classes = _image_folder(cfg, batch_size, rank, num_ranks, shard, for_training,
                                            norm, skips, closers)
    elif name == 'imagenet_rec':
        train, val, classes = _imagenet_rec(cfg, batch_size, rank, num_ranks, shard, for_training,
                                            mean, std, pinned_device)
    else:
        raise _cfg_error(cfg, 'data.dataset', '= %r is not a known dataset' % (name,))
    return DataBundle(train, val, classes, train.num_images if train is not None else 0,
                      val.num_images, skips, closers)
