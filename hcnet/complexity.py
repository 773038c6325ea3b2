"""MAdds and parameter counts measured from a built network's symbolic graph.

The network is traced to an MXNet symbol, shapes are inferred for a given
input size, and every ``Convolution`` / ``FullyConnected`` node contributes
``output elements x (weight elements per output channel)`` multiply-adds.
Nothing here knows the formula of a block; a new block type is counted as soon
as it is built from convolutions.

Two conventions (see ``../shared/reference/paper-tables.md``):

* **standard** -- conv + FC multiply-adds including SE, trainable parameters
  / 1e6 (what GluonCV and timm report);
* **paper** -- the convention that reproduces the paper's columns: all stored
  parameters including BatchNorm running statistics, / 2**20; SE convolutions
  counted in MAdds for EfficientNet but not MobileNetV3; SE biases left out of
  the Params of EfficientNet. Each base spec records its own flags.
"""
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field

import mxnet as mx
import numpy as np

__all__ = ['Complexity', 'count', 'BLOCK_RE']

#: Parameter / node names of a block contain ``stage<S>_block<B>_``.
BLOCK_RE = re.compile(r'(stage\d+_block\d+)_')
_SE_RE = re.compile(r'_se_')


@dataclass
class Complexity:
    """Raw counts of one network at one input size (batch 1)."""
    madds: int                  # conv + FC multiply-adds, SE included
    se_madds: int               # of which in SE modules
    params: int                 # trainable parameters
    bn_stats: int               # BatchNorm running mean/var (stored, not trained)
    se_bias: int                # SE conv biases (part of params)
    blocks: dict = field(default_factory=dict)  # 'stage3_block2' -> {'madds', 'params'}

    def standard(self):
        """(MAdds in M, params in M): conv+FC incl. SE, trainable / 1e6."""
        return self.madds / 1e6, self.params / 1e6

    def paper(self, se_madds=True, se_bias=True):
        """(MAdds in M, Params in 2**20) under the paper's convention."""
        madds = self.madds - (0 if se_madds else self.se_madds)
        params = self.params + self.bn_stats - (0 if se_bias else self.se_bias)
        return madds / 1e6, params / 2 ** 20

    def paper_for(self, base):
        """:meth:`paper` with the flags of base spec ``base``."""
        return self.paper(se_madds=base.paper_se_madds, se_bias=base.paper_se_bias)


def _block_of(name):
    m = BLOCK_RE.search(name)
    return m.group(1) if m else None


def count(net, input_size=224, channels=3):
    """Count MAdds and parameters of HybridBlock ``net`` for one ``input_size`` image."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    data = mx.sym.var('data')
    out = net(data)
    if isinstance(out, (list, tuple)):
        out = mx.sym.Group(list(out))
    shape = (1, channels) + size
    internals = out.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=shape)
    node_out = dict(zip(internals.list_outputs(), out_shapes))
    arg_shapes, _, aux_shapes = out.infer_shape(data=shape)
    args = dict(zip(out.list_arguments(), arg_shapes))
    args.pop('data')
    aux = dict(zip(out.list_auxiliary_states(), aux_shapes))

    blocks = OrderedDict()

    def add(block, key, value):
        if block is not None:
            blocks.setdefault(block, {'madds': 0, 'params': 0})[key] += value

    graph = json.loads(out.tojson())
    nodes = graph['nodes']
    madds = se_madds = 0
    for node in nodes:
        if node['op'] not in ('Convolution', 'FullyConnected'):
            continue
        weight = args[nodes[node['inputs'][1][0]]['name']]
        n = int(np.prod(node_out[node['name'] + '_output'])) * int(np.prod(weight[1:]))
        madds += n
        if _SE_RE.search(node['name']):
            se_madds += n
        add(_block_of(node['name']), 'madds', n)

    params = se_bias = 0
    for name, shape_ in args.items():
        n = int(np.prod(shape_))
        params += n
        if _SE_RE.search(name) and name.endswith('_bias'):
            se_bias += n
        add(_block_of(name), 'params', n)
    bn_stats = sum(int(np.prod(s)) for s in aux.values())
    return Complexity(madds=madds, se_madds=se_madds, params=params, bn_stats=bn_stats,
                      se_bias=se_bias, blocks=dict(blocks))
