"""Map a PyTorch state dict onto an hcnet network, by explicit rules per source.

The hcnet base networks hold their layers in the order timm's and torchvision's modules
do, so the mapping is an order-preserving zip: the source's tensors, put in network
order by the rules below (a safetensors file keeps no order), against
``net._collect_params_with_prefix()``. BatchNorm ``weight`` / ``bias`` are hcnet's
``gamma`` / ``beta``; ``num_batches_tracked`` (a training counter) is dropped; no tensor
is transposed. Each pair is checked twice: its **role** (a convolution's weight or bias,
a BatchNorm's four tensors, a dense layer's weight or bias -- from the source's name on
one side and hcnet's layer type on the other) and its **shape**. The one reshape is
torchvision's ``classifier.0`` (a Linear 960 -> 1280 after pooling), which is hcnet's
1x1 ``prelogits`` convolution: (1280, 960) -> (1280, 960, 1, 1).

Rules
-----
timm (``mobilenetv3_large_100``, ``efficientnet_b0`` .. ``efficientnet_b3``: timm's
EfficientNet builder; B1..B3's extra blocks are more ``blocks.<stage>.<block>``, the
second block of B1..B3's first stage another DepthwiseSeparable):
``conv_stem``, ``bn1``, then ``blocks.<stage>.<block>.*``, then ``conv_head``, ``bn2``
(EfficientNet only), ``classifier``. Inside a block, by the block's kind:

* InvertedResidual (has ``conv_pwl``): conv_pw, bn1, conv_dw, bn2, se.conv_reduce,
  se.conv_expand, conv_pwl, bn3;
* DepthwiseSeparable (has ``conv_dw``, no ``conv_pwl``): conv_dw, bn1, se.conv_reduce,
  se.conv_expand, conv_pw, bn2;
* ConvBnAct (has ``conv``; MobileNetV3's last stage): conv, bn1.

torchvision (``mobilenet_v3_large``): ``features.<i>.<0 conv | 1 bn>`` (stem, last
convolution), ``features.<i>.block.<j>.<0 conv | 1 bn | fc1 | fc2 (SE)>``, then
``classifier.0`` (-> prelogits) and ``classifier.3`` (-> the classifier).

Within a layer: weight, bias, running_mean, running_var.
"""
import re
from collections import OrderedDict, namedtuple

import numpy as np

__all__ = ['MapError', 'source_order', 'target_params', 'map_state_dict', 'ROLES']


class MapError(ValueError):
    """The state dict does not map onto the network (one line naming the tensor)."""


#: what a tensor is, on both sides
ROLES = ('conv.weight', 'conv.bias', 'bn.weight', 'bn.bias', 'bn.running_mean',
         'bn.running_var', 'dense.weight', 'dense.bias')
_PARAM_RANK = {'weight': 0, 'bias': 1, 'running_mean': 2, 'running_var': 3}
_ROLE_TEXT = {'conv.weight': 'a convolution weight', 'conv.bias': 'a convolution bias',
              'bn.weight': 'a BatchNorm weight (gamma)', 'bn.bias': 'a BatchNorm bias (beta)',
              'bn.running_mean': 'a BatchNorm running mean',
              'bn.running_var': 'a BatchNorm running variance',
              'dense.weight': 'a dense (Linear) weight', 'dense.bias': 'a dense (Linear) bias'}

#: one source tensor placed in network order: its key, sort key, the role of the hcnet
#: parameter it must land on, and whether a (out, in) matrix becomes a 1x1 convolution
Placed = namedtuple('Placed', 'key order role as_conv')


def _layer_role(kind, param, key):
    """The role of ``param`` of a layer of ``kind`` ('conv', 'bn', 'dense')."""
    allowed = ('weight', 'bias') if kind != 'bn' else tuple(_PARAM_RANK)
    if param not in allowed:
        raise MapError('tensor %s: a %s layer has no %r tensor' % (key, kind, param))
    return '%s.%s' % (kind, param)


# ------------------------------------------------------------------------------ timm

_TIMM_KEY = re.compile(r'^(?:blocks\.(\d+)\.(\d+)\.)?([a-z_0-9]+(?:\.[a-z_0-9]+)?)\.'
                       r'(weight|bias|running_mean|running_var)$')
_TIMM_TOP = {'conv_stem': (0, 'conv'), 'bn1': (1, 'bn'), 'conv_head': (3, 'conv'),
             'bn2': (4, 'bn'), 'classifier': (5, 'dense')}
_TIMM_BLOCKS = {
    'InvertedResidual': ('conv_pw', 'bn1', 'conv_dw', 'bn2', 'se.conv_reduce',
                         'se.conv_expand', 'conv_pwl', 'bn3'),
    'DepthwiseSeparable': ('conv_dw', 'bn1', 'se.conv_reduce', 'se.conv_expand', 'conv_pw',
                           'bn2'),
    'ConvBnAct': ('conv', 'bn1'),
}


def _timm_kind(layers):
    if 'conv_pwl' in layers:
        return 'InvertedResidual'
    if 'conv_dw' in layers:
        return 'DepthwiseSeparable'
    return 'ConvBnAct'


_TIMM_BLOCK_LAYERS = frozenset(l for layers in _TIMM_BLOCKS.values() for l in layers)


def _timm_order(keys):
    parsed, blocks = {}, {}
    for key in keys:
        m = _TIMM_KEY.match(key)
        if m is None:
            raise MapError('tensor %s is not a tensor of a timm EfficientNet-builder network '
                           '(conv_stem, bn1, blocks.S.B.*, conv_head, bn2, classifier)' % key)
        stage, block, layer, param = m.groups()
        if stage is None:
            if layer not in _TIMM_TOP:
                raise MapError('tensor %s: %r is not a top-level layer of a timm '
                               'EfficientNet-builder network' % (key, layer))
        elif layer not in _TIMM_BLOCK_LAYERS:
            raise MapError('tensor %s: %r is no layer of a timm block (%s)'
                           % (key, layer, ', '.join(sorted(_TIMM_BLOCK_LAYERS))))
        else:
            blocks.setdefault((int(stage), int(block)), set()).add(layer)
        parsed[key] = (stage, block, layer, param)
    placed = []
    for key, (stage, block, layer, param) in parsed.items():
        if stage is None:
            rank, kind = _TIMM_TOP[layer]
            order = (rank, 0, 0, 0, _PARAM_RANK[param])
        else:
            where = (int(stage), int(block))
            kind_name = _timm_kind(blocks[where])
            layers = _TIMM_BLOCKS[kind_name]
            if layer not in layers:
                raise MapError('tensor %s: a timm %s block has no layer %r'
                               % (key, kind_name, layer))
            kind = 'bn' if layer.startswith('bn') else 'conv'
            order = (2, where[0], where[1], layers.index(layer), _PARAM_RANK[param])
        placed.append(Placed(key, order, _layer_role(kind, param, key), False))
    return placed


# ------------------------------------------------------------------------ torchvision

_TV_PLAIN = re.compile(r'^features\.(\d+)\.([01])\.(weight|bias|running_mean|running_var)$')
_TV_BLOCK = re.compile(r'^features\.(\d+)\.block\.(\d+)\.(0|1|fc1|fc2)\.'
                       r'(weight|bias|running_mean|running_var)$')
_TV_HEAD = re.compile(r'^classifier\.(0|3)\.(weight|bias)$')
_TV_SUB = {'0': (0, 'conv'), '1': (1, 'bn'), 'fc1': (0, 'conv'), 'fc2': (1, 'conv')}


def _torchvision_mobilenetv3_order(keys):
    placed = []
    for key in keys:
        m = _TV_PLAIN.match(key)
        if m:
            rank, kind = _TV_SUB[m.group(2)]
            placed.append(Placed(key, (0, int(m.group(1)), 0, rank, _PARAM_RANK[m.group(3)]),
                                 _layer_role(kind, m.group(3), key), False))
            continue
        m = _TV_BLOCK.match(key)
        if m:
            rank, kind = _TV_SUB[m.group(3)]
            placed.append(Placed(key, (0, int(m.group(1)), int(m.group(2)), rank,
                                       _PARAM_RANK[m.group(4)]),
                                 _layer_role(kind, m.group(4), key), False))
            continue
        m = _TV_HEAD.match(key)
        if m:
            first = m.group(1) == '0'     # Linear(960, 1280) == hcnet's 1x1 prelogits conv
            placed.append(Placed(key, (1, int(m.group(1)), 0, 0, _PARAM_RANK[m.group(2)]),
                                 ('conv.' if first else 'dense.') + m.group(2), first))
            continue
        raise MapError('tensor %s is not a tensor of torchvision\'s MobileNetV3 (features.I.*, '
                       'classifier.0, classifier.3)' % key)
    return placed


_LAYOUTS = {'timm': _timm_order, 'torchvision_mobilenetv3': _torchvision_mobilenetv3_order}


def source_order(state, layout):
    """The tensors of ``state`` ({key: array}) that hold parameters, as :class:`Placed`
    in network order (``num_batches_tracked`` left out)."""
    keys = [k for k in state if not k.endswith('num_batches_tracked')]
    if not keys:
        raise MapError('the file holds no parameter tensors')
    placed = _LAYOUTS[layout](keys)
    placed.sort(key=lambda p: p.order)
    return placed


# ------------------------------------------------------------------------------ hcnet

def _block_roles(block, prefix, out):
    from mxnet.gluon import nn
    if isinstance(block, nn.BatchNorm):
        kind, names = 'bn', {'gamma': 'weight', 'beta': 'bias', 'running_mean': 'running_mean',
                             'running_var': 'running_var'}
    elif isinstance(block, nn.Conv2D):
        kind, names = 'conv', {'weight': 'weight', 'bias': 'bias'}
    elif isinstance(block, nn.Dense):
        kind, names = 'dense', {'weight': 'weight', 'bias': 'bias'}
    else:
        kind, names = type(block).__name__, {}
    for name in block._reg_params:
        out[prefix + name] = ('%s.%s' % (kind, names[name]) if name in names
                              else '%s.%s' % (kind, name))
    for child_name, child in block._children.items():
        _block_roles(child, prefix + child_name + '.', out)
    return out


def target_params(net):
    """OrderedDict {hcnet parameter name: (role, shape)} of ``net``, in
    ``_collect_params_with_prefix()`` order."""
    roles = _block_roles(net, '', {})
    out = OrderedDict()
    for name, param in net._collect_params_with_prefix().items():
        out[name] = (roles.get(name, 'unknown'), tuple(param.shape or ()))
    return out


def _describe(role):
    return _ROLE_TEXT.get(role, role)


def map_state_dict(state, layout, net, what):
    """{hcnet parameter name: float32 array} for ``net`` from the source state dict
    ``state`` laid out as ``layout``; every pair's role and shape checked. ``what``
    names the network in messages. Raises :class:`MapError` (one line, naming the
    tensor)."""
    placed = source_order(state, layout)
    targets = list(target_params(net).items())
    params = OrderedDict()
    for i, (src, (name, (role, shape))) in enumerate(zip(placed, targets)):
        array = state[src.key]
        if src.role != role:
            raise MapError('tensor %s (%s) lands on %s of %s, which is %s: the file is not '
                           'this network\'s state dict' % (src.key, _describe(src.role), name,
                                                           what, _describe(role)))
        if array.dtype.kind != 'f':
            raise MapError('tensor %s is %s, not floating point' % (src.key, array.dtype))
        value = array.reshape(array.shape + (1, 1)) if src.as_conv and array.ndim == 2 \
            else array
        if tuple(value.shape) != shape or 0 in shape:
            hint = (' (a classifier for %d classes: only ImageNet-1k weights, 1000 classes, '
                    'convert)' % array.shape[0]
                    if role.startswith('dense.') and array.ndim >= 1 and array.shape[0] != shape[0]
                    else '')
            raise MapError('tensor %s has shape %s, %s of %s expects %s%s'
                           % (src.key, tuple(array.shape), name, what, shape, hint))
        if not np.all(np.isfinite(value)):
            raise MapError('tensor %s holds NaN or infinite values' % src.key)
        if role == 'bn.running_var' and np.any(value < 0):
            raise MapError('tensor %s is a running variance with negative values' % src.key)
        params[name] = np.ascontiguousarray(value, dtype=np.float32)
    if len(placed) > len(targets):
        extra = placed[len(targets)]
        raise MapError('tensor %s has no counterpart in %s (the file has %d parameter tensors, '
                       'the network %d)' % (extra.key, what, len(placed), len(targets)))
    if len(placed) < len(targets):
        name, (role, _) = targets[len(placed)]
        after = (' after %s' % placed[-1].key) if placed else ''
        raise MapError('the file has no tensor for %s of %s (%s expected%s; the file has %d '
                       'parameter tensors, the network %d)'
                       % (name, what, _describe(role), after, len(placed), len(targets)))
    return params
