"""Feature maps of a classification network, as timm's ``features_only`` gives them.

A network family says where its feature maps are as data: ``net.feature_info``, a
:class:`FeatureInfo` with one dict per candidate map -- timm's keys ``num_chs`` (channels),
``reduction`` (output stride, nominal) and ``module`` (the block's name, see
:func:`hcnet.nn.block_name`), and ``index`` (its position in the list). The family lists
its blocks in execution order (:func:`feature_taps` input); which of them are feature maps
is decided here, by timm's rule for EfficientNet / MobileNetV3 (``feature_location=
'bottleneck'``): the *last* block at each reduction, i.e. the end of every stage that is
followed by a stride, and the last block.

:class:`FeatureNet` turns such a network into a backbone: it keeps the network's
sequential trunk (``net.features``) up to the last chosen block -- the same blocks, so the
same parameters under the same structural names (``features.2.0.body.0.0.weight``) --
drops the rest (head, pooling, classifier) and returns the chosen blocks' outputs as a
list. The zoo builds it for ``get_model(name, features_only=True, out_indices=...)``
(:func:`hcnet.model_zoo.build_model`).
"""
import copy
import numbers

from mxnet.gluon import HybridBlock, nn

from .utils import block_name, named_blocks

__all__ = ['FeatureInfo', 'FeatureNet', 'feature_taps', 'resolve_out_indices']


class FeatureInfo(list):
    """A list of dicts, one per feature map: ``num_chs``, ``reduction``, ``module``,
    ``index`` (timm's keys), with timm's accessors.

    ``channels()``, ``reduction()``, ``module_name()`` give the value for every map of the
    list, ``get(key, idx)`` for one (``idx`` an int) or several (a list) of them;
    ``out_indices`` are the maps' ``index`` values.
    """

    def get(self, key, idx=None):
        if idx is None:
            return [d[key] for d in self]
        if isinstance(idx, (list, tuple)):
            return [self[i][key] for i in idx]
        return self[idx][key]

    def get_dicts(self, keys=None, idx=None):
        items = list(self) if idx is None else (
            [self[i] for i in idx] if isinstance(idx, (list, tuple)) else [self[idx]])
        dicts = [dict(d) if keys is None else {k: d[k] for k in keys} for d in items]
        return dicts if idx is None or isinstance(idx, (list, tuple)) else dicts[0]

    def channels(self, idx=None):
        """Channels of each map (timm's ``feature_info.channels()``)."""
        return self.get('num_chs', idx)

    def reduction(self, idx=None):
        """Output stride of each map."""
        return self.get('reduction', idx)

    def module_name(self, idx=None):
        """Name of the block each map is the output of."""
        return self.get('module', idx)

    @property
    def out_indices(self):
        return tuple(d['index'] for d in self)

    def select(self, out_indices=None):
        """The maps at ``out_indices`` (see :func:`resolve_out_indices`), as a new
        :class:`FeatureInfo` in execution order."""
        return FeatureInfo(copy.deepcopy(self[i])
                           for i in resolve_out_indices(len(self), out_indices))


def resolve_out_indices(count, out_indices=None):
    """timm's ``out_indices`` over ``count`` feature maps, as sorted non-negative indices.

    ``None``: all of them; an int ``n``: the last ``n``; a sequence: those indices,
    negative ones counting from the end. Raises :class:`ValueError` for an index out of
    range, a repeated one, or an empty selection.
    """
    if out_indices is None:
        return tuple(range(count))
    if isinstance(out_indices, numbers.Integral) and not isinstance(out_indices, bool):
        if not 1 <= out_indices <= count:
            raise ValueError('out_indices=%d: there are %d feature maps (1 to %d of the last '
                             'can be taken)' % (out_indices, count, count))
        return tuple(range(count - out_indices, count))
    try:
        given = list(out_indices)
    except TypeError:
        raise ValueError('out_indices must be None, an int or a sequence of ints, not %r'
                         % (out_indices,)) from None
    indices = []
    for i in given:
        if not isinstance(i, numbers.Integral) or isinstance(i, bool):
            raise ValueError('out_indices must be ints, got %r' % (i,))
        if not -count <= i < count:
            raise ValueError('out_indices %s: there are %d feature maps (indices 0..%d, or '
                             '-%d..-1)' % (tuple(given), count, count - 1, count))
        indices.append(int(i) % count)
    if not indices or len(set(indices)) != len(indices):
        raise ValueError('out_indices %s: give at least one feature map, each once'
                         % (tuple(given),))
    return tuple(sorted(indices))


def feature_taps(units):
    """The feature maps of a network whose blocks are ``units``: dicts with ``module``,
    ``num_chs`` and ``reduction`` (the block's output stride), in execution order.

    Returns the :class:`FeatureInfo` of the last unit at each reduction (timm's
    'bottleneck' location), each with its ``index``.
    """
    taps, previous = [], 0
    for i, unit in enumerate(units):
        reduction = unit['reduction']
        if reduction < previous:
            raise ValueError('feature units must not lose resolution: %s at reduction %s '
                             'after %s' % (unit['module'], reduction, previous))
        last = i + 1 == len(units) or units[i + 1]['reduction'] != reduction
        if last:
            taps.append(dict(num_chs=int(unit['num_chs']), reduction=int(reduction),
                             module=unit['module'], index=len(taps)))
        previous = reduction
    return FeatureInfo(taps)


class FeatureNet(HybridBlock):
    """A backbone made of ``net``'s trunk: returns the list of the feature maps chosen by
    ``out_indices`` from ``net.feature_info``.

    Parameters
    ----------
    net : HybridBlock
        A network with a sequential trunk ``net.features`` (a ``HybridSequential``, whose
        blocks may be ``HybridSequential`` stages) and ``net.feature_info``.
    out_indices : None, int or sequence of int
        Which feature maps (:func:`resolve_out_indices`); default all.

    Only what the chosen maps need is kept: the trunk's blocks up to the last chosen one,
    under their structural names (``features.<i>[.<j>...]``, the classifier's), so weights
    of the classifier network fit (``load_parameters(..., ignore_extra=True)``). The
    outputs come in execution order; ``feature_info`` describes them.
    """

    def __init__(self, net, out_indices=None, **kwargs):
        info = getattr(net, 'feature_info', None)
        trunk = getattr(net, 'features', None)
        if not info or not isinstance(trunk, nn.HybridSequential):
            raise ValueError('%s declares no feature maps (feature_info and a sequential '
                             '`features` trunk)' % getattr(net, 'name_in_zoo', net.name))
        chosen = FeatureInfo(info).select(out_indices)
        where = {}          # the outermost block of a name (a HybridSequential(prefix='')
        for path, block in named_blocks(trunk):                  # has its parent's name)
            if path:
                where.setdefault(block_name(block, net), path)
        paths = []
        for d in chosen:
            if d['module'] not in where:
                raise ValueError('feature map %r of %s is no block of its trunk'
                                 % (d['module'], net.name))
            paths.append(tuple(where[d['module']].split('.')))
        super().__init__(**kwargs)
        self.features, self._plan = _prune(trunk, paths)
        self.feature_info = chosen

    @property
    def out_indices(self):
        return self.feature_info.out_indices

    def hybrid_forward(self, F, x):
        outputs = []
        _run(self.features, self._plan, x, outputs)
        return outputs


def _prune(container, paths, keep_all=False):
    """A copy of the sequential ``container`` holding its children up to the last one on
    ``paths`` (tuples of child keys; all of them with ``keep_all``, for a container that
    later maps need the whole of), recursing into children on a path; and the plan
    :func:`_run` follows: per kept child, (its own plan or None, whether it is a tap)."""
    if not isinstance(container, nn.HybridSequential):
        raise ValueError('feature maps can be taken inside sequential blocks only, not '
                         'inside %s' % container.name)
    keys = list(container._children)
    last = len(keys) - 1 if keep_all else max(keys.index(p[0]) for p in paths)
    pruned = nn.HybridSequential(prefix=container.prefix)
    plan = []
    for position, key in enumerate(keys[:last + 1]):
        child = container._children[key]
        inner = [p[1:] for p in paths if p[0] == key and len(p) > 1]
        sub = None
        if inner:
            child, sub = _prune(child, inner, keep_all=keep_all or position < last)
        pruned.add(child)
        assert list(pruned._children)[-1] == key      # structural names kept
        plan.append((sub, (key,) in paths))
    return pruned, tuple(plan)


def _run(container, plan, x, outputs):
    for i, (sub, tap) in enumerate(plan):
        child = container[i]
        x = child(x) if sub is None else _run(child, sub, x, outputs)
        if tap:
            outputs.append(x)
    return x
