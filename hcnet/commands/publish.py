"""Turn a training checkpoint into the files of a pretrained-weights store.

    hcnet publish runs/hc_m10_i10/best.ckpt --name hc_m10_i10 --out store/
    python -m http.server --directory store 8000        # or any static server / S3 bucket
    HCNET_REPO_URL=http://HOST:8000/ python -c \\
        "import hcnet; hcnet.get_model('hc_m10_i10', pretrained=True)"

Writes STORE/<name>-<sha1[:8]>.params (with --zip: STORE/<name>-<sha1[:8]>.zip
holding that file, GluonCV's layout; the downloader handles both) and merges the
model's entry (sha1, dataset, classes, input size, top-1, epoch, training config,
the constructor arguments it was trained with (model.kwargs), optional synset / class
names) into STORE/index.json; an entry already there for
the name is kept under "previous" (get_model(name, pretrained='<sha1 prefix>')
still finds it). Every file is written under a temporary name and renamed.

The parameters must fit hcnet.get_model(NAME, classes=<the checkpoint's>), the
network the downloader will build. For ImageNet (data.dataset=imagenet_rec, 1000
classes) the entry gets ImageNet-1k's synset (GluonCV's, the sorted-WNID order of
ImageNet .rec files) unless --synset is given.

Bad input (missing or corrupt checkpoint, unknown name, parameters that do not fit,
a broken STORE/index.json, an --out that cannot be written) ends with one line on
stderr and exit code 2, with nothing written.
"""
import argparse
import os
import sys

import numpy as np

from ..model_zoo import PretrainedError, check_params_fit, get_model, get_model_cfg, is_model
from ..model_zoo.builder import imagenet1k
from ..store.fetch import RESERVED_KWARGS, _plain_kwargs
from ..store.publish import PublishError, publish_params

def _read_list(path, what):
    try:
        with open(path, encoding='utf-8') as f:
            return [line.strip() for line in f if line.strip()]
    except OSError as err:
        raise PublishError('cannot read the %s file %s (%s)' % (what, path, err.strerror))


def _class_lists(args, classes, dataset):
    """(synset, class_names, class_names_long) from --synset / --class-names / ImageNet."""
    synset = names = long_names = None
    if args.synset:
        lines = _read_list(args.synset, 'synset')
        synset = [line.split(None, 1)[0] for line in lines]
        described = [line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else None
                     for line in lines]
        if all(described):
            long_names = described
            names = [d.split(',')[0].strip() for d in described]
    elif dataset == 'imagenet_rec' and classes == 1000:
        synset = imagenet1k()['synset']
    if args.class_names:
        names = _read_list(args.class_names, 'class-names')
    for what, value in (('--synset', synset), ('--class-names', names)):
        if value is not None and len(value) != classes:
            raise PublishError('%s lists %d classes, the checkpoint has %d'
                               % (what, len(value), classes))
    return synset, names, long_names


def _check_fits(name, classes, params, kwargs):
    """The downloader builds get_model(name, classes=classes, **kwargs): the params must
    fit it. Returns the params in that network's dtypes: a checkpoint of a
    ``net.cast('float16')`` run holds float16 arrays, and the published file is for the
    float32 network every loader builds (GluonCV's ``load_parameters`` without
    ``cast_dtype`` included)."""
    try:
        net = get_model(name, classes=classes, **kwargs)
    except (TypeError, ValueError) as err:
        raise PublishError('get_model(%r, **%r) fails with the checkpoint\'s model.kwargs: %s'
                           % (name, kwargs, err))
    try:
        check_params_fit(net, {k: v.shape for k, v in params.items()}, 'the checkpoint')
    except PretrainedError as err:
        raise PublishError('%s (get_model(%r, classes=%d, **%r))' % (err, name, classes, kwargs))
    dtypes = {k: np.dtype(p.dtype) for k, p in net._collect_params_with_prefix().items()}
    return {k: v.astype(dtypes[k]) if v.dtype.kind == 'f' and v.dtype != dtypes[k] else v
            for k, v in params.items()}


def publish(checkpoint, out_dir, name=None, use_zip=False, synset=None, class_names=None):
    """Publish ``checkpoint`` into the store directory ``out_dir``; return the index entry."""
    args = argparse.Namespace(synset=synset, class_names=class_names)
    from ..train.checkpoint import CheckpointError, load_checkpoint
    try:
        ckpt = load_checkpoint(checkpoint)
    except CheckpointError as err:
        raise PublishError(str(err))
    meta = ckpt.get('meta') or {}
    params = ckpt.get('params')
    if not isinstance(params, dict) or not params:
        raise PublishError('checkpoint %s holds no parameters' % checkpoint)
    name = (name or meta.get('model') or '').lower()
    if not name:
        raise PublishError('the checkpoint does not name its model: pass --name')
    if not is_model(name):
        raise PublishError('%r is not an hcnet model-zoo name (hcnet.get_model could not build '
                           'it)' % name)
    config = meta.get('config') or {}
    data_cfg = config.get('data') or {}
    classes = meta.get('classes')
    if not isinstance(classes, int):
        dense = [v for k, v in params.items() if k.startswith('output.') and v.ndim == 2]
        if len(dense) != 1:
            raise PublishError('the checkpoint meta has no number of classes')
        classes = int(dense[0].shape[0])
    # the constructor arguments it was trained with (model.kwargs) go into the entry, so
    # that get_model(name, pretrained=True) builds the network the weights fit
    kwargs = (config.get('model') or {}).get('kwargs') or {}
    if not _plain_kwargs(kwargs) or not isinstance(kwargs, dict):
        raise PublishError('the checkpoint\'s model.kwargs %r cannot be stored as constructor '
                           'arguments (plain names and values only; not %s)'
                           % (kwargs, ', '.join(RESERVED_KWARGS)))
    params = _check_fits(name, classes, params, kwargs)
    synset, names, long_names = _class_lists(args, classes, data_cfg.get('dataset'))

    top1 = meta.get('top1')
    info = {'model': meta.get('model') or name, 'dataset': data_cfg.get('dataset'),
            'classes': classes,
            'input_size': data_cfg.get('input_size') or get_model_cfg(name).input_size,
            'top1': round(float(top1), 4) if isinstance(top1, (int, float)) else None,
            'best_top1': meta.get('best_top1'), 'epoch': meta.get('epoch'), 'config': config,
            'synset': synset, 'class_names': names, 'class_names_long': long_names,
            'kwargs': kwargs or None}
    return publish_params(params, out_dir, name, info, use_zip=use_zip)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='hcnet publish', description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__)
    parser.add_argument('checkpoint', help='a training checkpoint (.ckpt)')
    parser.add_argument('--name', help="model-zoo name (default: the checkpoint's model)")
    parser.add_argument('--out', required=True, help='store directory (created if needed)')
    parser.add_argument('--zip', action='store_true',
                        help='publish a .zip holding the .params file instead of the bare file')
    parser.add_argument('--synset', help='file with one class per line: WNID [description]')
    parser.add_argument('--class-names', help='file with one class name per line')
    args = parser.parse_args(argv)
    try:
        entry = publish(args.checkpoint, args.out, args.name, args.zip, args.synset,
                        args.class_names)
    except PublishError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    name = entry['model'] if args.name is None else args.name.lower()
    print('published %s: %s (sha1 %s, %s classes, top-1 %s) in %s'
          % (name, entry['file'], entry['sha1'], entry['classes'], entry['top1'], args.out))
    print('use: %s=<URL of %s> ... hcnet.get_model(%r, pretrained=True)'
          % ('HCNET_REPO_URL', os.path.abspath(args.out), name))
    return 0

