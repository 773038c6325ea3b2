"""The zoo's one builder funnel: build a network, name it, attach its defaults, then
initialise it or load its published weights (as timm's ``build_model_with_cfg``).

Every zoo constructor ends here (:func:`build_model`), so ``pretrained=True`` / a sha1
prefix / a ``.params`` path means the same for every family. The store
(:mod:`hcnet.store`) only finds and verifies files; fitting them to a network is here
(:func:`check_params_fit`, used by loading, publishing and export alike).
"""
import os
import urllib.parse

import mxnet as mx

from ..nn.features import FeatureNet
from ..store import PretrainedError, TAG_RE, find_entry, get_model_file, repo_url

__all__ = ['build_model', 'features_of', 'init_or_load', 'load_pretrained', 'check_params_fit',
           'load_params_file', 'PretrainedError', 'INIT', 'imagenet1k']

#: He initialisation with fan-in scaling, every zoo network's initial weights
INIT = mx.init.MSRAPrelu(factor_type='in', slope=0.0)


def check_params_fit(net, shapes, what, skip=()):
    """Raise :class:`PretrainedError` unless ``shapes`` ({name: shape}, structural names
    as ``net._collect_params_with_prefix()``) are exactly ``net``'s parameters.

    Keys in ``skip`` (the classifier, when it is re-initialised) are not required.
    A classifier of another width gets its own message (build with the same classes,
    or load everything but the classifier).
    """
    params = net._collect_params_with_prefix()
    missing = sorted(set(params) - set(shapes) - set(skip))
    extra = sorted(set(shapes) - set(params))
    if missing or extra:
        raise PretrainedError('%s does not fit the network %s: missing %s, unexpected %s'
                              % (what, getattr(net, 'name_in_zoo', None) or net.name,
                                 missing[:4], extra[:4]))
    for key in sorted(params):
        if key in skip:
            continue
        known, shape = tuple(params[key].shape or ()), tuple(shapes[key])
        if known and 0 not in known and known != shape:
            if key in _classifier_keys(net, params):
                raise PretrainedError(
                    'weights %s have a classifier for %s classes, the network was built with '
                    'classes=%s (parameter %s: %s vs %s): build it with the same number of '
                    'classes, or pass pretrained_classifier=False to load everything but the '
                    'classifier (fine-tuning)'
                    % (what, shape[0], getattr(net, 'classes', '?'), key, shape, known))
            raise PretrainedError('parameter %s of %s has shape %s, the network %s'
                                  % (key, what, shape, known))



def _classifier_keys(net, params):
    output = getattr(net, 'output', None)
    if output is None:
        raise PretrainedError('pretrained_classifier=False needs a network with an `output` '
                              'block (the classifier)')
    ids = {id(p) for p in output.collect_params().values()}
    return {k for k, p in params.items() if id(p) in ids}


def load_params_file(net, path, ctx, classifier=True, what=None):
    """Load the ``.params`` file ``path`` into ``net``; arrays of another float type (a
    float16 file from a ``net.cast('float16')`` run) are cast to the network's. Anything
    that does not fit (another architecture, a classifier of another width, not a
    ``.params`` file) is a :class:`PretrainedError` naming the file."""
    what = what or path
    if not os.path.isfile(path):
        raise PretrainedError('%s does not exist' % what)
    try:
        loaded = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise PretrainedError('%s is not a readable .params file (%s)'
                              % (what, str(err).strip().splitlines()[0])) from None
    if not isinstance(loaded, dict) or not loaded:
        raise PretrainedError('%s holds no named parameters' % what)
    params = net._collect_params_with_prefix()
    if not any('.' in k for k in loaded) and classifier:
        # legacy (prefixed) names: Gluon's own loader, whose checks are assertions
        try:
            net.load_parameters(path, ctx=ctx, cast_dtype=True)
        except (AssertionError, KeyError, ValueError, mx.base.MXNetError) as err:
            raise PretrainedError('%s does not fit the network %s (%s)'
                                  % (what, getattr(net, 'name_in_zoo', None) or net.name,
                                     str(err).strip().splitlines()[0][:200] if str(err).strip()
                                     else type(err).__name__)) from None
        return
    skip = set() if classifier else _classifier_keys(net, params)
    check_params_fit(net, {k: v.shape for k, v in loaded.items()}, what, skip=skip)
    for key in sorted(params):
        if key in skip:
            continue
        param, value = params[key], loaded[key]
        param._load_init(value, ctx, cast_dtype=True, dtype_source='current')
    if skip:
        net.output.initialize(INIT, ctx=ctx)


def imagenet1k():
    """ImageNet-1k's ``synset`` (WNIDs in the sorted order of ImageNet .rec files),
    ``classes`` and ``classes_long`` names, as GluonCV defines them."""
    from gluoncv.data import ImageNet1kAttr
    attrs = ImageNet1kAttr()
    return {'synset': list(attrs.synset), 'classes': list(attrs.classes),
            'classes_long': list(attrs.classes_long)}


def _set_class_attrs(net, entry):
    synset = entry.get('synset')
    names, long_names = entry.get('class_names'), entry.get('class_names_long')
    if synset and not names:
        attrs = imagenet1k()
        if list(synset) == attrs['synset']:
            names, long_names = attrs['classes'], attrs['classes_long']
    if synset:
        net.synset = list(synset)
    if names:
        net.classes = list(names)
    if long_names:
        net.classes_long = list(long_names)


def init_or_load(net, name, pretrained=False, ctx=None, root=None, pretrained_classifier=True,
                 default_cfg=None):
    """The zoo's last step for a built ``net``: record its zoo ``name`` and defaults, then
    load ``pretrained`` weights (see :func:`load_pretrained`) or initialise it (He, fan-in)."""
    net.name_in_zoo = name
    if default_cfg is not None:
        net.default_cfg = default_cfg
    if pretrained:
        load_pretrained(net, name, pretrained, ctx=ctx or mx.cpu(), root=root,
                        pretrained_classifier=pretrained_classifier)
    else:
        net.initialize(INIT, ctx=ctx)
    return net


def build_model(builder, name, *, pretrained=False, ctx=None, root=None,
                pretrained_classifier=True, default_cfg=None, features_only=False,
                out_indices=None, **kwargs):
    """``builder(**kwargs)``, then :func:`init_or_load` -- every zoo constructor's body.

    Published weights may have been trained with constructor arguments (``kwargs`` of
    their store entry, e.g. ``dropout: 0.0`` or a BatchNorm epsilon): with
    ``pretrained=True`` or a sha1 prefix the network is built with them, under the
    caller's own ``kwargs``.

    ``features_only=True`` returns a backbone instead of the classifier, as timm's
    ``features_only``: a :class:`hcnet.nn.FeatureNet` whose output is the list of the
    network's feature maps (``out_indices``: which of ``net.feature_info``; default all --
    strides 2 to 32 for the HC networks and SqueezeNext, 1 to 8 for IR-Net at 56x56) and
    whose ``feature_info`` describes them. The whole classifier network is built and its
    weights loaded (``pretrained``; any classifier width fits, it is dropped), then its
    head, pooling and classifier are dropped; the parameters keep the classifier's names."""
    if not features_only and out_indices is not None:
        raise ValueError('out_indices=%r needs features_only=True' % (out_indices,))
    if pretrained is True or (isinstance(pretrained, str) and TAG_RE.match(pretrained)
                              and not os.path.isfile(pretrained)):
        entry = find_entry(name, pretrained if isinstance(pretrained, str) else None, None, root)
        kwargs = dict(entry.get('kwargs') or {}, **kwargs)
    net = builder(**kwargs)
    if features_only:
        if not getattr(net, 'feature_info', None):
            raise ValueError('features_only: %s declares no feature maps (feature_info); the '
                             'HC networks, IR-Net and SqueezeNext do' % name)
        try:
            net.feature_info.select(out_indices)          # a bad choice fails before loading
        except ValueError as err:
            raise ValueError('%s: %s' % (name, err)) from None
    net = init_or_load(net, name, pretrained, ctx=ctx, root=root,
                       pretrained_classifier=pretrained_classifier and not features_only,
                       default_cfg=default_cfg)
    return features_of(net, out_indices) if features_only else net


def features_of(net, out_indices=None):
    """The backbone of the built (initialised or loaded) zoo network ``net``: a
    :class:`hcnet.nn.FeatureNet` over the same blocks, with ``net``'s ``name_in_zoo``,
    ``default_cfg`` and ``pretrained_info``."""
    features = FeatureNet(net, out_indices=out_indices)
    for attr in ('name_in_zoo', 'default_cfg', 'pretrained_info'):
        if hasattr(net, attr):
            setattr(features, attr, getattr(net, attr))
    return features


def load_pretrained(net, name, pretrained, ctx=mx.cpu(), root=None, pretrained_classifier=True):
    """Load weights into the uninitialised ``net`` built for the zoo name ``name``.

    ``pretrained``: ``True`` (the newest published weights), a sha1 prefix of 8 to
    40 hex digits (that version), or the path of a ``.params`` file.
    ``pretrained_classifier=False`` loads everything but the classifier
    (``net.output``), which is freshly initialised -- for fine-tuning on another
    number of classes. Raises :class:`PretrainedError` (a ``ValueError``) with
    the reason when no usable weights exist.
    """
    if isinstance(pretrained, os.PathLike):
        pretrained = os.fspath(pretrained)
    if isinstance(pretrained, str) and os.path.isfile(pretrained):
        load_params_file(net, pretrained, ctx, pretrained_classifier)
        net.pretrained_info = {'source': 'file', 'path': os.path.abspath(pretrained)}
        return net
    if isinstance(pretrained, str) and not TAG_RE.match(pretrained):
        if os.sep in pretrained or pretrained.endswith('.params') or '.' in pretrained:
            raise PretrainedError('pretrained weights file %s does not exist' % pretrained)
        raise PretrainedError('pretrained=%r is neither a .params file nor a sha1 prefix '
                              '(8-40 hex digits) of published weights for %r' % (pretrained, name))
    if pretrained is not True and not isinstance(pretrained, str):
        raise PretrainedError('pretrained must be True, a sha1 prefix or a .params path, not %r'
                              % (pretrained,))
    tag = pretrained if isinstance(pretrained, str) else None
    entry = find_entry(name, tag, None, root)
    classes = entry.get('classes')
    net_classes = getattr(net, 'classes', None)
    if (pretrained_classifier and isinstance(classes, int) and isinstance(net_classes, int)
            and classes != net_classes):
        raise PretrainedError(
            'the published weights for %r (sha1 %s) classify %d classes, the network was built '
            'with classes=%d: build it with classes=%d, or pass pretrained_classifier=False to '
            'load everything but the classifier (fine-tuning)'
            % (name, entry['sha1'][:8], classes, net_classes, classes))
    path = get_model_file(name, root=root, entry=entry)
    load_params_file(net, path, ctx, pretrained_classifier,
                 what='%s (published weights for %s)' % (path, name))
    if pretrained_classifier:
        _set_class_attrs(net, entry)
    info = {'source': 'store', 'path': path, 'sha1': entry['sha1'], 'entry': entry}
    if entry.get('file'):
        info['url'] = urllib.parse.urljoin(repo_url(), entry['file'])
    net.pretrained_info = info
    return net
