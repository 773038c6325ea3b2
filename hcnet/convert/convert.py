"""From a timm / torchvision weights file to hcnet store files.

:func:`convert_params` reads the file (:mod:`.reader`: safetensors, or a PyTorch file
through the restricted unpickler), builds the hcnet network the source is
(:mod:`.sources`: its zoo name and constructor arguments) and maps every tensor onto it
(:mod:`.mapping`: roles and shapes checked). :func:`convert_file` then writes the
parameters and their index entry into a store directory with the writer ``hcnet
publish`` uses (:func:`hcnet.store.publish_params`), with what a user of the weights
needs: dataset, classes and ImageNet-1k's synset, input size, mean / std, evaluation
crop and interpolation (and, in ``source``, the source's test size and crop where it has
one), the constructor arguments (``kwargs``: ``get_model(name,
pretrained=True)`` builds with them), where the weights come from and their licence.
"""
import hashlib
import os
from collections import namedtuple

from ..model_zoo import PretrainedError, check_params_fit, get_model, is_model
from ..model_zoo.builder import imagenet1k
from ..store import PublishError, publish_params
from ..store.fetch import _plain_kwargs
from .mapping import MapError, map_state_dict
from .reader import ReadError, read_state_dict
from .sources import SourceError, get_source

__all__ = ['ConvertError', 'Converted', 'convert_params', 'convert_file', 'entry_info']

#: classes of every source's weights (ImageNet-1k, in the sorted-WNID order that timm,
#: torchvision and GluonCV share)
CLASSES = 1000


class ConvertError(ValueError):
    """A file that cannot be converted (one line saying why, naming the file or tensor)."""


#: the outcome of :func:`convert_params`
Converted = namedtuple('Converted', 'name source tag tag_chosen_by kwargs params path sha256 '
                                    'tensors')


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def convert_params(path, source, name=None):
    """Read ``path`` as the state dict of ``source`` (``LIBRARY:MODEL[.TAG]``) and map it
    onto hcnet's network ``name`` (default: the source's); a :class:`Converted`.
    Raises :class:`ConvertError`."""
    try:
        src, tag, chosen = get_source(source, os.path.basename(os.fspath(path)))
    except SourceError as err:
        raise ConvertError(str(err))
    name = (name or src.hcnet).lower()
    if name != src.hcnet:
        if not is_model(name):
            raise ConvertError('%r is not an hcnet model-zoo name' % name)
        raise ConvertError('%s is the architecture of %s, not of %s (leave --name out, or '
                           'pass --name %s)' % (src.key, src.hcnet, name, src.hcnet))
    try:
        state = read_state_dict(path)
    except ReadError as err:
        raise ConvertError(str(err))
    kwargs = dict(src.kwargs)
    what = 'hcnet %s%s' % (name, ' (%s)' % ', '.join('%s=%r' % kv for kv in kwargs.items())
                           if kwargs else '')
    net = get_model(name, classes=CLASSES, **kwargs)
    try:
        params = map_state_dict(state, src.layout, net, what)
        check_params_fit(net, {k: v.shape for k, v in params.items()},
                         '%s converted from %s' % (path, src.key))
    except (MapError, PretrainedError) as err:
        raise ConvertError('%s (%s): %s' % (path, src.key, err))
    return Converted(name, src, tag, chosen, kwargs, params, os.path.abspath(path),
                     _sha256(path), len(params))


def entry_info(converted):
    """The index-entry fields of converted weights (sha1, file and size are the writer's)."""
    src, tag = converted.source, converted.tag
    data = {'dataset': 'imagenet', 'input_size': tag.input_size,
            'crop_ratio': round(tag.crop_ratio, 6), 'mean': list(tag.mean),
            'std': list(tag.std), 'interpolation': tag.interpolation}
    kwargs = converted.kwargs
    if not _plain_kwargs(kwargs):
        raise ConvertError('constructor arguments %r cannot be stored in an index entry'
                           % (kwargs,))
    return {
        'model': converted.name, 'dataset': 'imagenet', 'classes': CLASSES,
        'input_size': tag.input_size, 'mean': list(tag.mean), 'std': list(tag.std),
        'crop_ratio': round(tag.crop_ratio, 6), 'interpolation': tag.interpolation,
        'top1': None,                       # not measured here: see source.reported_top1
        'kwargs': kwargs or None,
        'config': {'data': data, 'model': {'name': converted.name, 'kwargs': kwargs}},
        'synset': imagenet1k()['synset'],
        'source': {
            'library': src.library, 'model': src.model, 'tag': tag.name,
            'tag_chosen_by': converted.tag_chosen_by, 'spec': '%s.%s' % (src.key, tag.name),
            'file': os.path.basename(converted.path), 'file_sha256': converted.sha256,
            'published_as': list(tag.files), 'url': tag.url,
            'reported_top1': tag.top1, 'reported_top1_where': tag.top1_where,
            # the source's other evaluation setting for these weights (timm's
            # test_input_size / test_crop_pct), with the top-1 it reports there
            'test_input_size': tag.test_input_size,
            'test_crop_ratio': (None if tag.test_crop_ratio is None
                                else round(tag.test_crop_ratio, 6)),
            'reported_top1_at_test_size': tag.test_top1,
            'tensors': converted.tensors,
        },
        'licence': src.licence, 'licence_note': src.licence_note,
        'converted_by': 'hcnet convert',
    }


def convert_file(path, source, out_dir, name=None, use_zip=False):
    """Convert ``path`` (see :func:`convert_params`) and publish it into the store
    directory ``out_dir``; (index entry, :class:`Converted`). Raises
    :class:`ConvertError`."""
    converted = convert_params(path, source, name)
    try:
        entry = publish_params(converted.params, out_dir, converted.name,
                               entry_info(converted), use_zip=use_zip)
    except PublishError as err:
        raise ConvertError(str(err))
    return entry, converted
