"""IR-Net's dataset: 100 ImageNet classes downsampled by 4 to 56x56 (``hcnet irnet-data``).

IR-Net (``ir-net.txt``) trains on "images [...] down sampled by factor of 4 which leads
to quarter of rows and columns of a typical ImageNet image", 100 classes (its Table 2,
DATA NUM CLASSES); it names neither the classes nor the resize. Our choices:

**Resize rule.** A "typical ImageNet image" is the network's 224x224 view, so each image
becomes the 56x56 image that is that view downsampled by 4: the largest centred square
of the image (side = its shorter side), reduced to 56x56 with an area filter (PIL's
``BOX``: every output pixel is the mean of the input pixels it covers; a 224x224 square
gives exactly the mean of each 4x4 block). Equivalently: shorter side resized to 56 by
area averaging, then the central 56x56 -- no further crop, so evaluating at 56 with
``data.crop_ratio: 1.0`` (the IR-Net configs) sees the whole stored image. Images are
decoded in full (no JPEG draft scaling), converted to RGB (greyscale and CMYK images
too), ignoring EXIF orientation as ImageNet pipelines do, and stored as JPEG
(quality 95 by default) under their own file stem.

**Classes.** ``irnet100_classes.txt`` (shipped beside this module) holds the 100 classes:
``numpy.random.RandomState(0).choice(1000, 100, replace=False)``, sorted, as indices into
ImageNet-1k's 1000 WNIDs in sorted order (GluonCV's ``ImageNet1kAttr().synset``, the
order of ImageNet ``.rec`` files). :func:`class_list_text` regenerates the file and
``tests/test_irnet_data.py`` checks that it does so exactly. The labels of the output
are the classes' positions in sorted WNID order (what ``image_folder`` reads from the
sorted folder names); ``OUT/classes.txt`` lists them in that order.

**Layout.** ``ROOT/train/<wnid>/*.JPEG`` and ``ROOT/val/<wnid>/*.JPEG`` in (validation
images sorted into class folders, as ImageNet's ``valprep.sh`` does) ->
``OUT/train/<wnid>/*.JPEG`` and ``OUT/val/<wnid>/*.JPEG`` out: the ``image_folder``
dataset. With ``rec=True`` also ``OUT/{train,val}.{rec,idx}`` for ``imagenet_rec``,
packed from the written 56x56 JPEGs (no re-encoding; records in a seeded shuffled
order, label = class position). ``OUT/irnet100.json`` records how the set was made.

Every file is written under a temporary name and renamed (:mod:`hcnet.fileio`); a file
already under its final name is complete and is kept (``overwrite=True`` redoes it), so
an interrupted run continues where it stopped. Images that cannot be decoded are
skipped and counted.
"""
import json
import os
import random
import warnings
from multiprocessing import Pool

from ..fileio import atomic_path, remove_quietly, write_text

__all__ = ['SIZE', 'NUM_CLASSES', 'SEED', 'DEFAULT_OUT', 'CLASS_LIST', 'RESIZE_RULE',
           'DatasetError', 'choose_classes', 'class_list_text', 'read_class_list',
           'downsample', 'scan', 'build']

SIZE = 56
NUM_CLASSES = 100
SEED = 0
#: where the IR-Net configs (``hcnet/configs/_base/irnet.yaml``, ``data.root``) look
DEFAULT_OUT = os.path.join('~', '.mxnet', 'datasets', 'imagenet100_56')
CLASS_LIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'irnet100_classes.txt')
RESIZE_RULE = ('largest centred square, area-resized (PIL BOX) to %dx%d: the 224x224 view '
               'downsampled by 4')
EXTENSIONS = ('.jpeg', '.jpg', '.png', '.bmp', '.ppm', '.tif', '.tiff', '.webp')
SPLITS = ('train', 'val')


class DatasetError(Exception):
    """Bad input a user can fix (missing directories, classes, class list)."""


# --------------------------------------------------------------------------------------
# the class list

def choose_classes(num=NUM_CLASSES, seed=SEED, synset=None):
    """[(index, wnid)] of the ``num`` classes drawn with ``seed`` from the sorted
    ``synset`` (default: ImageNet-1k's, from GluonCV), in sorted order."""
    import numpy as np
    if synset is None:
        from gluoncv.data import ImageNet1kAttr
        synset = ImageNet1kAttr().synset
    synset = sorted(synset)
    picked = np.random.RandomState(seed).choice(len(synset), num, replace=False)
    return [(int(i), synset[i]) for i in sorted(picked)]


def class_list_text(num=NUM_CLASSES, seed=SEED):
    """The text of ``irnet100_classes.txt``."""
    from gluoncv.data import ImageNet1kAttr
    attrs = ImageNet1kAttr()
    assert list(attrs.synset) == sorted(attrs.synset)
    lines = ['# IR-Net\'s %d ImageNet classes (hcnet irnet-data; hcnet/data/irnet100.py).' % num,
             '# numpy.random.RandomState(%d).choice(1000, %d, replace=False), sorted: indices'
             % (seed, num),
             '# into the 1000 ImageNet-1k WNIDs in sorted order (GluonCV ImageNet1kAttr().synset).',
             '# Regenerate: python -c "from hcnet.data.irnet100 import class_list_text; '
             'print(class_list_text(), end=\'\')"',
             '# columns: wnid, index in ImageNet-1k, name']
    for index, wnid in choose_classes(num, seed, attrs.synset):
        lines.append('%s\t%d\t%s' % (wnid, index, attrs.classes[index]))
    return '\n'.join(lines) + '\n'


def read_class_list(path=CLASS_LIST):
    """The WNIDs (first field of each line; ``#`` starts a comment) of a class-list file."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise DatasetError('cannot read the class list %s (%s)' % (path, err.strerror or err))
    wnids = [line.split('#', 1)[0].split()[0] for line in lines
             if line.split('#', 1)[0].strip()]
    if not wnids:
        raise DatasetError('the class list %s names no class' % path)
    dup = sorted({w for w in wnids if wnids.count(w) > 1})
    if dup:
        raise DatasetError('the class list %s names %s more than once' % (path, ', '.join(dup)))
    bad = [w for w in wnids if w in ('.', '..') or os.sep in w or '/' in w]
    if bad:
        raise DatasetError('the class list %s has an invalid class name %r' % (path, bad[0]))
    return sorted(wnids)


# --------------------------------------------------------------------------------------
# one image

def downsample(img, size=SIZE):
    """``img`` (a PIL image) -> RGB ``size`` x ``size``: the largest centred square,
    area-resized (the resize rule of the module docstring)."""
    from PIL import Image
    img = img.convert('RGB')
    w, h = img.size
    s = min(w, h)
    box = ((w - s) / 2.0, (h - s) / 2.0, (w + s) / 2.0, (h + s) / 2.0)
    return img.resize((size, size), Image.BOX, box=box)


def _convert(task):
    """Worker: decode ``src``, downsample, write ``dst`` atomically. Returns (src, ok).
    A file that cannot be decoded is reported (ok False); a failure to write raises."""
    src, dst, size, quality = task
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')          # PIL's EXIF / decompression warnings
            with Image.open(src) as img:
                out = downsample(img, size)
    except Exception:  # pylint: disable=broad-except  (corrupt, truncated, not an image)
        return src, False
    with atomic_path(dst, fsync=False) as tmp:
        out.save(tmp, format='JPEG', quality=quality)
    return src, True


# --------------------------------------------------------------------------------------
# the whole set

def _images(folder):
    return sorted(f for f in os.listdir(folder)
                  if f.lower().endswith(EXTENSIONS) and os.path.isfile(os.path.join(folder, f)))


def scan(root, classes):
    """{split: [(class, [file names])]} of ``root``, checked: every class has a folder
    with at least one image in train/ and val/ (else :class:`DatasetError`)."""
    if not os.path.isdir(root):
        raise DatasetError('%s is not a directory (expected an ImageNet directory with '
                           'train/<wnid>/ and val/<wnid>/)' % root)
    for split in SPLITS:
        if not os.path.isdir(os.path.join(root, split)):
            raise DatasetError('%s lacks %s/ (expected %s/<wnid>/*.JPEG)'
                               % (root, split, os.path.join(root, split)))
    found = {}
    for split in SPLITS:
        base = os.path.join(root, split)
        missing = [c for c in classes if not os.path.isdir(os.path.join(base, c))]
        if missing:
            hint = ''
            if split == 'val' and _images(base):
                hint = ' (val/ holds images directly: sort them into <wnid>/ folders first, ' \
                       'e.g. with ImageNet\'s valprep.sh)'
            raise DatasetError('%s has no folder for %d of the %d classes: %s%s%s'
                               % (base, len(missing), len(classes), ', '.join(missing[:5]),
                                  ' ...' if len(missing) > 5 else '', hint))
        rows = []
        for c in classes:
            files = _images(os.path.join(base, c))
            if not files:
                raise DatasetError('%s has no images' % os.path.join(base, c))
            rows.append((c, files))
        found[split] = rows
    return found


def _dst_name(fname):
    return os.path.splitext(fname)[0] + '.JPEG'


def _remove_leftovers(out, classes):
    """Temporary files a killed worker left (atomic_path removes its own otherwise)."""
    for split in SPLITS:
        for c in classes:
            folder = os.path.join(out, split, c)
            if os.path.isdir(folder):
                for f in os.listdir(folder):
                    if f.endswith('.tmp') and '.JPEG.' in f:
                        remove_quietly(os.path.join(folder, f))


def _count_written(out, classes):
    counts = {}
    for split in SPLITS:
        counts[split] = {c: len([f for f in os.listdir(os.path.join(out, split, c))
                                 if f.endswith('.JPEG')]) for c in classes}
    return counts


def write_rec(out, classes, seed=SEED):
    """``OUT/{train,val}.{rec,idx}`` from the 56x56 JPEGs in ``OUT/{train,val}/<class>/``:
    the bytes as they are, label = position of the class, records in a seeded shuffle."""
    import mxnet as mx
    written = {}
    for split in SPLITS:
        items = [(os.path.join(out, split, c, f), label)
                 for label, c in enumerate(classes)
                 for f in sorted(os.listdir(os.path.join(out, split, c))) if f.endswith('.JPEG')]
        random.Random(seed).shuffle(items)
        rec, idx = os.path.join(out, split + '.rec'), os.path.join(out, split + '.idx')
        with atomic_path(rec) as rec_tmp, atomic_path(idx) as idx_tmp:
            writer = mx.recordio.MXIndexedRecordIO(idx_tmp, rec_tmp, 'w')
            try:
                for i, (path, label) in enumerate(items):
                    with open(path, 'rb') as f:
                        payload = f.read()
                    writer.write_idx(i, mx.recordio.pack(
                        mx.recordio.IRHeader(0, float(label), i, 0), payload))
            finally:
                writer.close()
        written[split] = len(items)
    return written


def build(root, out, classes, size=SIZE, workers=None, quality=95, rec=False, overwrite=False,
          progress=True):
    """Make the dataset; returns a report dict (counts, skipped files, paths).

    ``classes``: WNIDs (see :func:`read_class_list`); ``workers``: decoding processes
    (default: every core; 0 decodes in this process). Raises :class:`DatasetError` on
    bad input, ``OSError`` when the output cannot be written.
    """
    classes = sorted(classes)
    root, out = os.path.expanduser(root), os.path.expanduser(out)
    if os.path.realpath(root) == os.path.realpath(out):
        raise DatasetError('the output directory %s is the input directory: choose another '
                           '--out' % out)
    if size < 1 or not 1 <= quality <= 100:
        raise DatasetError('size must be positive and quality in 1..100 (got %r, %r)'
                           % (size, quality))
    found = scan(root, classes)
    tasks, kept = [], 0
    for split in SPLITS:
        for c, files in found[split]:
            folder = os.path.join(out, split, c)
            os.makedirs(folder, exist_ok=True)
            for fname in files:
                dst = os.path.join(folder, _dst_name(fname))
                if not overwrite and os.path.isfile(dst):
                    kept += 1
                    continue
                tasks.append((os.path.join(root, split, c, fname), dst, size, quality))
    if workers is None:
        workers = os.cpu_count() or 1
    bad = []
    from tqdm import tqdm
    bar = tqdm(total=len(tasks), unit='img', desc='irnet-data', disable=not progress,
               smoothing=0.1, dynamic_ncols=True)
    try:
        if workers > 0 and len(tasks) > 1:
            with Pool(min(workers, len(tasks))) as pool:
                for src, ok in pool.imap_unordered(_convert, tasks, chunksize=16):
                    if not ok:
                        bad.append(src)
                    bar.update()
        else:
            for task in tasks:
                src, ok = _convert(task)
                if not ok:
                    bad.append(src)
                bar.update()
    except BaseException:
        _remove_leftovers(out, classes)
        raise
    finally:
        bar.close()
    counts = _count_written(out, classes)
    empty = ['%s/%s' % (split, c) for split in SPLITS for c in classes if not counts[split][c]]
    if empty:
        raise DatasetError('no image of %s could be decoded (%s)' % (
            ', '.join(empty[:5]), os.path.join(root, empty[0])))
    report = {
        'source': os.path.abspath(root), 'out': os.path.abspath(out), 'size': size,
        'quality': quality, 'resize': RESIZE_RULE % (size, size), 'seed': SEED,
        'classes': len(classes),
        'images': {split: sum(counts[split].values()) for split in SPLITS},
        'converted': len(tasks) - len(bad), 'kept': kept,
        'skipped': sorted(bad),
    }
    if rec:
        report['rec'] = write_rec(out, classes)
    write_text(os.path.join(out, 'classes.txt'), '\n'.join(classes) + '\n')
    write_text(os.path.join(out, 'irnet100.json'), json.dumps(report, indent=1) + '\n')
    return report
