"""The store's writer: put a network's parameters and their index entry into a store directory.

Writes ``STORE/<name>-<sha1[:8]>.params`` (``use_zip``: ``STORE/<name>-<sha1[:8]>.zip``
holding that file, GluonCV's layout; the reader handles both) and merges the entry into
``STORE/index.json``; an entry already there for the name is kept under ``previous``
(``get_model(name, pretrained='<sha1 prefix>')`` still finds it). Every file is written
under a temporary name and renamed; on failure nothing is left behind.

This module knows no model: checking that the parameters fit the network the reader will
build is the caller's step (``hcnet publish`` does it through the zoo).
"""
import json
import os
import time
import zipfile

from ..fileio import atomic_path, remove_quietly, tmp_name
from .fetch import file_name, sha1_file

__all__ = ['PublishError', 'publish_params', 'read_store_index']

#: entry fields left out when they are None
_OPTIONAL = ('synset', 'class_names', 'class_names_long')


class PublishError(Exception):
    """The store directory cannot take the weights (one line saying why)."""


def read_store_index(path):
    """The ``{name: entry}`` index at ``path`` ({} when there is none)."""
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


def publish_params(params, out_dir, name, info, use_zip=False):
    """Publish ``params`` ({key: numpy array}) as ``name`` into ``out_dir``; return the entry.

    ``info`` holds the entry's descriptive fields (model, dataset, classes, input size,
    top-1, epoch, config, synset, class names); sha1, file, size and the publication
    time are added here. Raises :class:`PublishError`.
    """
    import mxnet as mx
    from .. import __version__
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise PublishError('cannot create %s (%s)' % (out_dir, err.strerror))
    if not os.path.isdir(out_dir):
        raise PublishError('%s is not a directory' % out_dir)
    index_path = os.path.join(out_dir, 'index.json')
    index = read_store_index(index_path)
    created, temps = [], []
    try:
        tmp = tmp_name(os.path.join(out_dir, name + '.params'))
        temps.append(tmp)
        mx.nd.save(tmp, {k: mx.nd.array(params[k], dtype=params[k].dtype)
                         for k in sorted(params)})
        sha1, size = sha1_file(tmp), os.path.getsize(tmp)
        fname = file_name(name, sha1)
        entry = {'sha1': sha1, 'file': fname, 'size': size}
        final_tmp, final = tmp, os.path.join(out_dir, fname)
        if use_zip:
            zname = fname[:-len('.params')] + '.zip'
            ztmp = tmp_name(os.path.join(out_dir, zname))
            temps.append(ztmp)
            _write_zip(tmp, fname, ztmp)
            entry.update(file=zname, file_sha1=sha1_file(ztmp), file_size=os.path.getsize(ztmp))
            final_tmp, final = ztmp, os.path.join(out_dir, zname)
        entry.update({k: v for k, v in info.items()
                      if v is not None or k not in _OPTIONAL})
        entry.update(published=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
                     hcnet_version=__version__)
        blob = json.dumps(_merge(index, name, entry), indent=1, sort_keys=True,
                          default=str).encode('utf-8')
        if not os.path.exists(final):
            os.replace(final_tmp, final)
            created.append(final)
        with atomic_path(index_path) as itmp:
            with open(itmp, 'xb') as f:
                f.write(blob + b'\n')
        created = []
        return entry
    except (OSError, mx.base.MXNetError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise PublishError('cannot write to %s (%s)' % (out_dir, lines[-1] if lines else err))
    finally:
        for path in temps + created:
            remove_quietly(path)
