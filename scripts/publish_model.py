#!/usr/bin/env python
"""Turn a training checkpoint into the files of a pretrained-weights store.

    python scripts/publish_model.py runs/hc_m10_i10/best.ckpt --name hc_m10_i10 --out store/
    python -m http.server --directory store 8000        # or any static server / S3 bucket
    HCNET_REPO_URL=http://HOST:8000/ python -c \\
        "import hcnet; hcnet.get_model('hc_m10_i10', pretrained=True)"

Writes STORE/<name>-<sha1[:8]>.params (with --zip: STORE/<name>-<sha1[:8]>.zip
holding that file, GluonCV's layout; the downloader handles both) and merges the
model's entry (sha1, dataset, classes, input size, top-1, epoch, training config,
optional synset / class names) into STORE/index.json; an entry already there for
the name is kept under "previous" (get_model(name, pretrained='<sha1 prefix>')
still finds it). Every file is written under a temporary name and renamed.

The parameters must fit hcnet.get_model(NAME, classes=<the checkpoint's>), the
network the downloader will build. For ImageNet (data.dataset=imagenet_rec, 1000
classes) the entry gets ImageNet-1k's synset (GluonCV's, the sorted-WNID order of
ImageNet .rec files) unless --synset is given.

Bad input (missing or corrupt checkpoint, unknown name, parameters that do not fit,
a broken STORE/index.json) ends with one line on stderr and exit code 2, with
nothing written.
"""
import argparse
import json
import os
import sys
import time
import uuid
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))


class PublishError(Exception):
    pass


def _tmp(path):
    return '%s.%d.%s.tmp' % (path, os.getpid(), uuid.uuid4().hex[:8])


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


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
        from gluoncv.data import ImageNet1kAttr
        synset = list(ImageNet1kAttr().synset)
    if args.class_names:
        names = _read_list(args.class_names, 'class-names')
    for what, value in (('--synset', synset), ('--class-names', names)):
        if value is not None and len(value) != classes:
            raise PublishError('%s lists %d classes, the checkpoint has %d'
                               % (what, len(value), classes))
    return synset, names, long_names


def _check_fits(name, classes, params):
    """The downloader builds get_model(name, classes=classes): the params must fit it."""
    import hcnet
    net = hcnet.get_model(name, classes=classes)
    shapes = {k: tuple(p.shape) for k, p in net._collect_params_with_prefix().items()}
    missing = sorted(set(shapes) - set(params))
    extra = sorted(set(params) - set(shapes))
    wrong = sorted(k for k in set(shapes) & set(params) if shapes[k] != tuple(params[k].shape))
    if missing or extra or wrong:
        raise PublishError('the checkpoint parameters do not fit get_model(%r, classes=%d): '
                           'missing %s, unexpected %s, other shapes %s (trained with '
                           'architecture-changing model.kwargs?)'
                           % (name, classes, missing[:3], extra[:3], wrong[:3]))


def _read_index(path):
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding='utf-8') as f:
            index = json.load(f)
    except (OSError, ValueError) as err:
        raise PublishError('%s exists but cannot be read as JSON (%s)' % (path, err))
    if not isinstance(index, dict):
        raise PublishError('%s is not a JSON object {name: entry}' % path)
    return index


def _write_params(params, out_dir, name):
    """Save as a Gluon .params file under a temporary name; return (tmp, sha1, size)."""
    import mxnet as mx
    from hcnet.model_store import sha1_file
    tmp = _tmp(os.path.join(out_dir, name + '.params'))
    mx.nd.save(tmp, {k: mx.nd.array(params[k], dtype=params[k].dtype) for k in sorted(params)})
    return tmp, sha1_file(tmp), os.path.getsize(tmp)


def _write_zip(params_tmp, member, zip_tmp):
    info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))   # reproducible bytes
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    with zipfile.ZipFile(zip_tmp, 'w') as zf, open(params_tmp, 'rb') as f:
        with zf.open(info, 'w') as dst:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                dst.write(chunk)


def _merge(index, name, entry):
    old = index.get(name)
    if isinstance(old, dict):
        history = [dict(old, previous=None)] + list(old.get('previous') or [])
        seen, previous = {entry['sha1']}, []
        for version in history:
            version = {k: v for k, v in version.items() if k != 'previous'}
            if version.get('sha1') not in seen:
                seen.add(version.get('sha1'))
                previous.append(version)
        if previous:
            entry['previous'] = previous
    index[name] = entry
    return index


def publish(checkpoint, out_dir, name=None, use_zip=False, synset=None, class_names=None):
    """Publish ``checkpoint`` into the store directory ``out_dir``; return the index entry."""
    args = argparse.Namespace(synset=synset, class_names=class_names)
    from hcnet import __version__
    from hcnet.checkpoint import CheckpointError, load_checkpoint
    from hcnet.model_zoo import is_model
    from hcnet.model_store import file_name, sha1_file
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
    _check_fits(name, classes, params)
    synset, names, long_names = _class_lists(args, classes, data_cfg.get('dataset'))

    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise PublishError('cannot create %s (%s)' % (out_dir, err.strerror))
    index_path = os.path.join(out_dir, 'index.json')
    index = _read_index(index_path)

    created, temps = [], []
    try:
        tmp, sha1, size = _write_params(params, out_dir, name)
        temps.append(tmp)
        fname = file_name(name, sha1)
        entry = {'sha1': sha1, 'file': fname, 'size': size}
        final_tmp, final = tmp, os.path.join(out_dir, fname)
        if use_zip:
            zname = fname[:-len('.params')] + '.zip'
            ztmp = _tmp(os.path.join(out_dir, zname))
            temps.append(ztmp)
            _write_zip(tmp, fname, ztmp)
            entry.update(file=zname, file_sha1=sha1_file(ztmp), file_size=os.path.getsize(ztmp))
            final_tmp, final = ztmp, os.path.join(out_dir, zname)
        top1 = meta.get('top1')
        entry.update({
            'model': meta.get('model') or name,
            'dataset': data_cfg.get('dataset'),
            'classes': classes,
            'input_size': data_cfg.get('input_size'),
            'top1': round(float(top1), 4) if isinstance(top1, (int, float)) else None,
            'best_top1': meta.get('best_top1'),
            'epoch': meta.get('epoch'),
            'config': config,
            'published': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            'hcnet_version': __version__,
        })
        for key, value in (('synset', synset), ('class_names', names),
                           ('class_names_long', long_names)):
            if value is not None:
                entry[key] = value
        blob = json.dumps(_merge(index, name, entry), indent=1, sort_keys=True,
                          default=str).encode('utf-8')
        if not os.path.exists(final):
            os.replace(final_tmp, final)
            created.append(final)
        itmp = _tmp(index_path)
        temps.append(itmp)
        with open(itmp, 'wb') as f:
            f.write(blob + b'\n')
            f.flush()
            os.fsync(f.fileno())
        os.replace(itmp, index_path)
        created = []
        return entry
    except OSError as err:
        raise PublishError('cannot write to %s (%s)' % (out_dir, err))
    finally:
        for path in temps + created:
            _remove(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1],
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


if __name__ == '__main__':
    sys.exit(main())
