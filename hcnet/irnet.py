"""IR-Net: an inverted-residual network for 56x56, 100-class ImageNet (``ir-net.txt``).

Network (the paper's Table 1)
-----------------------------
Stem ``Conv 3x3/1 (16) + BN + ReLU`` (stride 1: the images are ImageNet
downsampled by 4, so the usual first stride 2 is dropped), five stages of
blocks, head ``Conv 1x1 (1280) + BN + ReLU``, global average pooling and a
linear classifier with bias. Each stage is a run of identity blocks followed
by one transition block (the rows of Table 1 in order)::

    stage  identity blocks      transition
    1      1 x 16 -> 16         16 -> 24,  stride 1
    2      1 x 24 -> 24         24 -> 40,  stride 2
    3      2 x 40 -> 40         40 -> 80,  stride 2
    4      3 x 80 -> 80         80 -> 160, stride 2
    5      4 x 160 -> 160       160 -> 320, stride 1

Every block expands to ``Ne = 4 * Ni`` channels with a 3x3 depthwise
convolution and ReLU, and has a residual exactly when Table 1 says ``ID=True``
(stride 1, same width). Three block kinds (Figure 2):

* ``A`` -- plain inverted residual: an :class:`hcnet.nn.MBBlock`;
* ``B`` -- the same with squeeze-and-excitation after the depthwise
  convolution, internal rank reduction ``R = 4`` of the expanded width
  (``Ne / 4`` squeeze channels, ReLU, sigmoid gate): an MBBlock with
  ``se_channels``;
* ``C`` -- SE plus conditional convolutions (``M = 4`` experts) for the 1x1
  expansion, the depthwise and the 1x1 projection convolutions:
  :class:`CondConvIRB`, built from :class:`CondConv2D`.

Blocks are named ``stage<S>_block<B>_`` (1-based), the stem ``stem_``, the head
``head_`` and the classifier ``output_``, so :func:`hcnet.count`'s per-block
breakdown gives the paper's Table 4 layer by layer (:func:`irnet_layer_macs`,
:func:`render_irnet_table`).

CondConv
--------
:class:`CondConv2D` computes, per example ``n``, routing weights
``r[n] = sigmoid(FC(GAP(x[n])))`` (one per expert, as in the CondConv paper)
and the convolution with the mixed kernel ``W_n = sum_e r[n, e] W_e``.
Convolution is linear in its kernel, so ``conv(x_n, W_n) = sum_e r[n, e]
conv(x_n, W_e)``: we run *one* convolution with the ``E`` experts stacked along
the output channels and mix the ``E`` outputs with ``r``. That hybridizes for
any batch size (the "N*C groups" trick, one grouped convolution over the batch
folded into channels, needs the batch size in the graph) and is exactly equal
(tested against per-example mixed kernels). Its cost is ``E`` convolutions
instead of one, and that is what :func:`hcnet.count` sees; an implementation
that mixes kernels first costs one convolution plus ``E * |W|`` multiply-adds
of kernel mixing per example. :func:`irnet_layer_macs` reports both
(``macs`` as counted, ``macs_efficient`` for the kernel-mixing implementation;
the routing FC is in both).
"""
from dataclasses import dataclass
from functools import partial
from typing import Optional, Tuple

import mxnet as mx
from mxnet.gluon import nn

from .complexity import BLOCK_RE, count
from .nn import InvertedResidual, MBBlock, SEModule, conv_bn_act, get_act_layer

__all__ = ['CondConv2D', 'CondConvIRB', 'IRNet', 'irnet', 'IRNET_TABLE1', 'IRNET_KINDS',
           'PaperLayer', 'PAPER_TABLE4', 'PAPER_TABLE4_TOTAL', 'PAPER_TABLE4_NOTES',
           'FILTER_CX_NOTE', 'IRNetLayer', 'irnet_layer_macs', 'render_irnet_table']

#: Table 1, one row per stage: (width of its identity blocks, output width of its
#: transition block, number of identity blocks, stride of the transition block).
IRNET_TABLE1 = ((16, 24, 1, 1), (24, 40, 1, 2), (40, 80, 2, 2), (80, 160, 3, 2),
                (160, 320, 4, 1))
STEM_CHANNELS, HEAD_CHANNELS = 16, 1280
EXPANSION, SE_REDUCTION, NUM_EXPERTS = 4, 4, 4

#: Block kinds of Figure 2.
IRNET_KINDS = {
    'A': 'standard building block (inverted residual, expansion 4, 3x3, ReLU)',
    'B': 'SE enhanced building block (SE after the depthwise conv, R = 4)',
    'C': 'SE and conditional convolution enhanced building block (M = 4 experts)',
}


# --------------------------------------------------------------------------------------
# CondConv

class CondConv2D(nn.HybridBlock):
    """Conditionally parameterised convolution (Yang et al., CondConv, 2019).

    ``y[n] = conv(x[n], sum_e r[n, e] W_e)`` with routing weights
    ``r[n] = sigmoid(routing(mean_hw(x[n])))``, ``routing`` a Dense layer
    ``in_channels -> num_experts`` (with bias), computed from this layer's input.

    Implemented as one convolution whose ``num_experts * channels`` outputs are
    the experts' outputs, mixed per example with ``r`` (equal to the kernel
    mixture because convolution is linear in the kernel; see the module doc for
    the cost difference).

    Parameters
    ----------
    channels, kernel_size, strides, padding, groups, in_channels
        As :class:`mxnet.gluon.nn.Conv2D` (square kernels; ``in_channels`` is
        required; ``padding`` defaults to ``kernel_size // 2``).
    num_experts : int
        Number of expert kernels ``E``.
    use_bias : bool
        Per-expert biases, mixed like the kernels.

    Parameter layout: ``weight`` has shape ``(E * channels, in_channels / groups,
    k, k)``; output channel ``o`` of expert ``e`` in group ``j`` (``o`` counted
    within the group) is row ``(j * E + e) * channels / groups + o``. With one
    expert (or one group) this is the plain ``Conv2D`` layout;
    :meth:`expert_weights` / :meth:`set_expert_weights` convert to and from
    ``(E, channels, in_channels / groups, k, k)``.
    """

    def __init__(self, channels, kernel_size, strides=1, padding=None, groups=1, in_channels=0,
                 num_experts=NUM_EXPERTS, use_bias=False, weight_initializer=None,
                 bias_initializer='zeros', **kwargs):
        super().__init__(**kwargs)
        if in_channels <= 0:
            raise ValueError('CondConv2D needs in_channels (its routing layer is sized by it)')
        if channels % groups or in_channels % groups:
            raise ValueError('channels (%d) and in_channels (%d) must be multiples of groups (%d)'
                             % (channels, in_channels, groups))
        if num_experts < 1:
            raise ValueError('num_experts must be >= 1, got %r' % num_experts)
        self.channels, self.in_channels, self.groups = channels, in_channels, groups
        self.num_experts, self.kernel_size = num_experts, kernel_size
        pad = kernel_size // 2 if padding is None else padding
        self._conv_kwargs = dict(kernel=(kernel_size, kernel_size), stride=(strides, strides),
                                 pad=(pad, pad), num_filter=num_experts * channels,
                                 num_group=groups)
        with self.name_scope():
            self.weight = self.params.get(
                'weight', shape=(num_experts * channels, in_channels // groups,
                                 kernel_size, kernel_size), init=weight_initializer)
            if use_bias:
                self.bias = self.params.get('bias', shape=(num_experts * channels,),
                                            init=bias_initializer)
            else:
                self.bias = None
            self.routing = nn.Dense(num_experts, in_units=in_channels, prefix='routing_')

    def _routing(self, F, x):
        return F.sigmoid(self.routing(F.mean(x, axis=(2, 3))))

    def hybrid_forward(self, F, x, weight, bias=None):
        r = self._routing(F, x)                                   # (N, E)
        if bias is None:
            conv = F.Convolution(x, weight, name='fwd', no_bias=True, **self._conv_kwargs)
        else:
            conv = F.Convolution(x, weight, bias, name='fwd', **self._conv_kwargs)
        g, e, o = self.groups, self.num_experts, self.channels
        y = F.reshape(conv, shape=(0, g, e, o // g, -1))         # (N, g, E, O/g, H*W)
        y = F.sum(F.broadcast_mul(y, F.reshape(r, shape=(0, 1, e, 1, 1))), axis=2)
        y = F.reshape(y, shape=(0, o, -1))                        # (N, O, H*W)
        return F.reshape_like(y, conv, lhs_begin=2, lhs_end=3, rhs_begin=2, rhs_end=4)

    # -- helpers (imperative) ----------------------------------------------------------
    def routing_weights(self, x):
        """The routing weights ``r`` (N, E) for the NDArray batch ``x``."""
        return self._routing(mx.nd, x)

    def expert_weights(self):
        """The expert kernels as an NDArray ``(E, channels, in_channels / groups, k, k)``."""
        g, e, o = self.groups, self.num_experts, self.channels
        w = self.weight.data().reshape((g, e, o // g) + self.weight.shape[1:])
        return w.transpose((1, 0, 2, 3, 4, 5)).reshape((e, o) + self.weight.shape[1:])

    def set_expert_weights(self, experts):
        """Set the kernels from an array ``(E, channels, in_channels / groups, k, k)``."""
        g, e, o = self.groups, self.num_experts, self.channels
        w = mx.nd.array(experts).reshape((e, g, o // g) + self.weight.shape[1:])
        self.weight.set_data(w.transpose((1, 0, 2, 3, 4, 5)).reshape(self.weight.shape))

    def mixed_kernels(self, x):
        """Per-example kernels ``sum_e r[n, e] W_e``: NDArray ``(N, channels, C/g, k, k)``."""
        r = self.routing_weights(x)                               # (N, E)
        w = self.expert_weights()                                 # (E, O, C/g, k, k)
        mixed = mx.nd.dot(r, w.reshape((self.num_experts, -1)))  # (N, O * C/g * k * k)
        return mixed.reshape((-1,) + w.shape[1:])

    def madds(self, out_h, out_w, efficient=True):
        """Multiply-adds for one example with an ``out_h x out_w`` output.

        ``efficient=False``: this implementation (``E`` convolutions + routing FC),
        what :func:`hcnet.count` reports. ``efficient=True``: mixing the kernels
        first (``E * |W|``), one convolution, routing FC.
        """
        kernel = self.channels * self.in_channels // self.groups * self.kernel_size ** 2
        one_conv = out_h * out_w * kernel
        routing = self.in_channels * self.num_experts
        if efficient:
            return one_conv + self.num_experts * kernel + routing
        return self.num_experts * one_conv + routing


class CondConvIRB(InvertedResidual):
    """Inverted residual block with conditional convolutions (IR-Net block [C]).

    :class:`hcnet.nn.MBBlock`'s structure -- 1x1 expand + BN + act, kxk depthwise
    (stride) + BN + act, optional SE on the expanded width, 1x1 project + BN,
    residual when ``stride == 1`` and the widths agree -- built by the same code
    (:class:`hcnet.nn.InvertedResidual`) with ``conv_layer`` a :class:`CondConv2D`
    of ``num_experts`` experts (each convolution with its own routing, named
    ``condconv_``). Children are named ``expand_``, ``dw_``, ``se_``, ``project_``
    as in MBBlock. Not an MBBlock: :mod:`hcnet.deploy` emits it by its generic
    fallback (its MBBlock rewrites are for :class:`mxnet.gluon.nn.Conv2D`).
    ``act_layer`` defaults to ReLU; other keyword arguments as MBBlock's.
    """

    def __init__(self, in_channels, exp_channels, out_channels, kernel_size=3, stride=1,
                 se_channels=0, num_experts=NUM_EXPERTS, act_layer=None, se_layer=SEModule,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, **kwargs):
        super().__init__(in_channels, exp_channels, out_channels, kernel_size, stride,
                         se_channels=se_channels, act_layer=act_layer or get_act_layer('relu'),
                         se_layer=se_layer, norm_layer=norm_layer, norm_kwargs=norm_kwargs,
                         conv_layer=partial(CondConv2D, num_experts=num_experts,
                                            prefix='condconv_'),
                         **kwargs)


# --------------------------------------------------------------------------------------
# the network

class IRNet(nn.HybridBlock):
    """IR-Net of Table 1 with blocks of kind ``block`` (``'A'``, ``'B'`` or ``'C'``).

    Parameters
    ----------
    block : str
        ``A`` plain IRB, ``B`` IRB + SE, ``C`` IRB + SE + CondConv.
    classes : int
        Output classes (100 in the paper).
    se_reduction : int
        SE squeeze width = expanded width / ``se_reduction`` (blocks B, C).
    num_experts : int
        CondConv experts (block C).
    stem_stride : int
        1 for the paper's 56x56 inputs; 2 gives the usual ImageNet-224 stem.
    dropout : float
        Dropout before the classifier (the paper has none).
    norm_layer, norm_kwargs
        Normalisation layer type and keyword arguments, used for every BatchNorm.

    ``features`` (stem, ``stage1_`` .. ``stage5_``, head, global pooling) and
    ``output`` (the classifier) as in :class:`hcnet.HCNet`; any input size works.
    """

    def __init__(self, block='A', classes=100, expansion=EXPANSION, se_reduction=SE_REDUCTION,
                 num_experts=NUM_EXPERTS, stem_stride=1, dropout=0.0, norm_layer=nn.BatchNorm,
                 norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        kind = str(block).upper()
        if kind not in IRNET_KINDS:
            raise ValueError('IR-Net block kind must be one of %s, got %r'
                             % (', '.join(IRNET_KINDS), block))
        self.block_kind, self.classes = kind, classes
        self.expansion, self.se_reduction, self.num_experts = expansion, se_reduction, num_experts
        self.stem_stride = stem_stride
        norm = dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        relu = get_act_layer('relu')
        se_layer = partial(SEModule, act_layer=relu, gate_layer=get_act_layer('sigmoid'))
        #: (unit name, in, expanded, out, stride) of every block, in order
        self.block_plan = []
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            self.features.add(conv_bn_act(3, STEM_CHANNELS, 3, stem_stride, act_layer=relu,
                                          prefix='stem_', **norm))
            cin = STEM_CHANNELS
            for s, (width, out, repeats, stride) in enumerate(IRNET_TABLE1, 1):
                if width != cin:
                    raise AssertionError('Table 1 is inconsistent at stage %d' % s)
                stage = nn.HybridSequential(prefix='stage%d_' % s)
                with stage.name_scope():
                    for b, (cout, st) in enumerate([(width, 1)] * repeats + [(out, stride)], 1):
                        exp = expansion * cin
                        se = exp // se_reduction if kind in 'BC' else 0
                        common = dict(kernel_size=3, stride=st, se_channels=se, act_layer=relu,
                                      se_layer=se_layer, prefix='block%d_' % b, **norm)
                        if kind == 'C':
                            stage.add(CondConvIRB(cin, exp, cout, num_experts=num_experts,
                                                  **common))
                        else:
                            stage.add(MBBlock(cin, exp, cout, **common))
                        self.block_plan.append(('stage%d_block%d' % (s, b), cin, exp, cout, st))
                        cin = cout
                self.features.add(stage)
            self.features.add(conv_bn_act(cin, HEAD_CHANNELS, 1, act_layer=relu,
                                          prefix='head_', **norm))
            self.features.add(nn.GlobalAvgPool2D())
            self.output = nn.HybridSequential(prefix='output_')
            with self.output.name_scope():
                self.output.add(nn.Flatten())
                if dropout:
                    self.output.add(nn.Dropout(dropout))
                self.output.add(nn.Dense(classes, in_units=HEAD_CHANNELS,
                                         weight_initializer=mx.init.Normal(0.01)))

    @property
    def stem(self):
        return self.features[0]

    @property
    def head(self):
        return self.features[len(self.features) - 2]

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def irnet(block='A', classes=100, pretrained=False, ctx=mx.cpu(), root=None, name=None,
          pretrained_classifier=True, norm_layer=nn.BatchNorm, norm_kwargs=None, dropout=0.0,
          **kwargs):
    """Build an :class:`IRNet` and initialise it on ``ctx`` (or load ``pretrained`` weights).

    ``pretrained``: ``True`` (published weights of the zoo ``name``), a sha1
    prefix or a ``.params`` path, as :func:`hcnet.model_store.load_pretrained`.
    Other keyword arguments go to :class:`IRNet` (``se_reduction``,
    ``num_experts``, ``stem_stride``).
    """
    name = name or 'irnet_' + str(block).lower()
    net = IRNet(block, classes=classes, dropout=dropout, norm_layer=norm_layer,
                norm_kwargs=norm_kwargs, **kwargs)
    from .model_store import init_or_load
    return init_or_load(net, name, pretrained, ctx=ctx, root=root,
                        pretrained_classifier=pretrained_classifier)


# --------------------------------------------------------------------------------------
# the paper's Table 4, and ours

@dataclass(frozen=True)
class PaperLayer:
    """One row of the paper's Table 4."""
    operation: str
    rep: int
    macs: int
    filter_cx: int


_BLOCK = 'Block (Ne=4Ni, F=3, S=%d, ID=%s)'

#: ir-net.txt, Table 4: per-operation MACs and filter coefficients of network [A].
PAPER_TABLE4 = (
    PaperLayer('Conv (3x3/1), Batch Norm, ReLU', 1, 1354752, 432),
    PaperLayer(_BLOCK % (1, True), 1, 8228864, 38912),
    PaperLayer(_BLOCK % (1, False), 1, 9834496, 39424),
    PaperLayer(_BLOCK % (1, True), 1, 17160192, 87552),
    PaperLayer(_BLOCK % (2, False), 1, 5494272, 89088),
    PaperLayer(_BLOCK % (1, True), 2, 22328320, 486400),
    PaperLayer(_BLOCK % (2, False), 1, 7808640, 249600),
    PaperLayer(_BLOCK % (1, True), 3, 31799040, 2918400),
    PaperLayer(_BLOCK % (2, False), 1, 7667520, 998400),
    PaperLayer(_BLOCK % (1, True), 4, 41269760, 15564800),
    PaperLayer(_BLOCK % (1, False), 1, 15335040, 3993600),
    PaperLayer('Conv (1x1/1), Batch Norm, ReLU', 1, 20070400, 409600),
    PaperLayer('Global Avg Pool, Linear, Bias', 1, 128000, 0),
)
#: The paper's "Total" row: (MACs, filter coefficients).
PAPER_TABLE4_TOTAL = (193898304, 24876208)

#: Why a row of ours differs from the paper (row index -> explanation). Rows not
#: listed match the MAC column exactly.
PAPER_TABLE4_NOTES = {
    4: ('Paper 5,494,272 = 28*28 x (24*96 + 96*9 + 96*40): all three convolutions '
        'counted at the 28x28 output, as if the stride were in the 1x1 expansion. Ours '
        'counts the expansion at its 56x56 input (3,136 x 2,304 = 7,225,344 instead of '
        '1,806,336; +5,419,008), as the paper itself does in its other two stride-2 '
        'rows (7,808,640 and 7,667,520 are reproduced only that way) and in its Total: '
        'the paper\'s rows add up to 188,479,296, exactly 5,419,008 less than its Total '
        '193,898,304, which our rows reproduce. The cell is a slip in the paper.'),
}

#: What the paper's "Filter Cx" column counts (see :func:`render_irnet_table`).
FILTER_CX_NOTE = (
    'The "Filter Cx" column does not count our network\'s weights. It is reproduced '
    'exactly, row by row and in total, by counting every block\'s 3x3 depthwise '
    'convolution as a dense Ne -> Ne 3x3 convolution (9 Ne^2 coefficients instead of '
    '9 Ne; e.g. the first block: 16*64 + 9*64*64 + 64*16 = 38,912), the stem and head '
    'as dense convolutions, and 0 for the classifier (its 1280 x 100 = 128,000 weights '
    'are left out although its MACs are counted). The MAC column, by contrast, counts '
    'the depthwise convolution as depthwise (9 Ne per output pixel). Our column counts '
    'the actual convolution and linear weights (no BatchNorm, no biases).')


@dataclass
class IRNetLayer:
    """One row of our Table 4 for one network (see :func:`irnet_layer_macs`)."""
    operation: str
    rep: int
    units: Tuple[str, ...]          # 'stem', 'stage3_block1', ..., 'head', 'classifier'
    macs: int                       # conv + FC multiply-adds as hcnet.count measures them
    params: int                     # trainable parameters (BatchNorm gamma/beta included)
    filter_cx: int                  # conv + FC weights (no BatchNorm, no biases)
    filter_cx_paper_rule: int       # the paper's rule: depthwise as dense, classifier 0
    macs_efficient: Optional[int] = None   # block C: CondConv with kernel mixing
    paper: Optional[PaperLayer] = None
    note: str = ''


def _rows(net):
    """(operation, rep, units, paper-rule filter coefficients) of Table 4 for ``net``."""
    rows = [('Conv (3x3/%d), Batch Norm, ReLU' % net.stem_stride, 1, ('stem',),
             9 * 3 * STEM_CHANNELS)]
    plan = {unit: (cin, exp, cout, st) for unit, cin, exp, cout, st in net.block_plan}
    for s, (width, out, repeats, stride) in enumerate(IRNET_TABLE1, 1):
        for units, st, ident in ((tuple('stage%d_block%d' % (s, b) for b in range(1, repeats + 1)),
                                  1, True),
                                 (('stage%d_block%d' % (s, repeats + 1),), stride, False)):
            cx = 0
            for unit in units:
                cin, exp, cout, _ = plan[unit]
                cx += cin * exp + 9 * exp * exp + exp * cout
            rows.append((_BLOCK % (st, ident), len(units), units, cx))
    last = IRNET_TABLE1[-1][1]
    rows.append(('Conv (1x1/1), Batch Norm, ReLU', 1, ('head',), last * HEAD_CHANNELS))
    rows.append(('Global Avg Pool, Linear, Bias', 1, ('classifier',), 0))
    return rows


def _unit_of(name, prefix):
    block = BLOCK_RE.search(name)
    if block:
        return block.group(1)
    rest = name[len(prefix):]
    for unit, key in (('stem', 'stem_'), ('head', 'head_'), ('classifier', 'output_')):
        if rest.startswith(key):
            return unit
    return None


def _walk(block):
    yield block
    for child in block._children.values():
        yield from _walk(child)


def _resolve(name):
    key = str(name).lower()
    if key.startswith('irnet_'):
        key = key[len('irnet_'):]
    if key.upper() not in IRNET_KINDS:
        raise ValueError('unknown IR-Net %r: use irnet_a, irnet_b or irnet_c' % name)
    return key.upper()


def irnet_layer_macs(name='irnet_a', input_size=56, classes=100):
    """Our Table 4 for ``irnet_a`` / ``irnet_b`` / ``irnet_c``: a list of :class:`IRNetLayer`.

    MACs and parameters are measured with :func:`hcnet.count` on the built
    network: blocks from its per-block breakdown (``stage<S>_block<B>``), stem,
    head and classifier by counting those sub-blocks at their input size. For
    ``irnet_c``, ``macs_efficient`` replaces each CondConv's ``E`` convolutions by
    one convolution plus the kernel mixing (output sizes read from the traced
    graph). Rows are those of the paper's Table 4, ``paper`` is its row.
    """
    kind = _resolve(name)
    net = IRNet(kind, classes=classes)             # counting needs no initialisation
    cx = count(net, input_size)
    # spatial size after each unit, from the traced graph
    data = mx.sym.var('data')
    internals = net(data).get_internals()
    _, shapes, _ = internals.infer_shape(data=(1, 3, input_size, input_size))
    shape_of = dict(zip(internals.list_outputs(), shapes))

    madds = {unit: v['madds'] for unit, v in cx.blocks.items()}
    params = {unit: v['params'] for unit, v in cx.blocks.items()}
    stem = count(net.stem, input_size)
    res = next(shape[2] for key, shape in shape_of.items()       # the head keeps its input size
               if key.startswith(net.head.prefix) and key.endswith('_output') and len(shape) == 4)
    head = count(net.head, res, channels=net.block_plan[-1][3])
    clf = count(net.output, 1, channels=HEAD_CHANNELS)
    for unit, c in (('stem', stem), ('head', head), ('classifier', clf)):
        madds[unit], params[unit] = c.madds, c.params

    weights = {}
    for pname, param in net.collect_params().items():
        if pname.endswith('_weight'):
            unit = _unit_of(pname, net.prefix)
            weights[unit] = weights.get(unit, 0) + int(_prod(param.shape))

    efficient = dict(madds)
    for blk in _walk(net):
        if isinstance(blk, CondConv2D):
            out = shape_of[blk.prefix + 'fwd_output']
            unit = _unit_of(blk.prefix, net.prefix)
            efficient[unit] += (blk.madds(out[2], out[3], efficient=True)
                                - blk.madds(out[2], out[3], efficient=False))

    layers = []
    for i, (operation, rep, units, rule) in enumerate(_rows(net)):
        paper = PAPER_TABLE4[i] if (input_size, classes) == (56, 100) else None
        layers.append(IRNetLayer(
            operation=operation, rep=rep, units=units,
            macs=sum(madds[u] for u in units), params=sum(params[u] for u in units),
            filter_cx=sum(weights.get(u, 0) for u in units), filter_cx_paper_rule=rule,
            macs_efficient=(sum(efficient[u] for u in units) if kind == 'C' else None),
            paper=paper, note=PAPER_TABLE4_NOTES.get(i, '') if kind == 'A' else ''))
    total = sum(layer.macs for layer in layers)
    if total != cx.madds:
        raise AssertionError('per-layer MACs (%d) do not add up to the network\'s (%d)'
                             % (total, cx.madds))
    return layers


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _n(v):
    return '–' if v is None else '{:,}'.format(v)


def render_irnet_table(input_size=56):
    """Markdown: the paper's Table 4 beside ours for [A], then [A]/[B]/[C] per layer."""
    a = irnet_layer_macs('irnet_a', input_size)
    b = irnet_layer_macs('irnet_b', input_size)
    c = irnet_layer_macs('irnet_c', input_size)
    out = ['### IR-Net, Table 4: MACs and filter coefficients per operation ([A], %dx%d, '
           '100 classes)' % (input_size, input_size), '',
           'Ours: `hcnet.count` on `irnet_a` (conv + FC multiply-adds; BN, ReLU, pooling '
           'and residual adds are not counted, as in the paper). "Filter Cx, paper\'s rule": '
           'the paper\'s way of counting coefficients, recomputed (see below).', '',
           '| # | operation | rep | MACs paper | MACs ours | Δ | Filter Cx paper '
           '| Filter Cx, paper\'s rule | weights ours |',
           '|' + '---|' * 9]
    for i, layer in enumerate(a):
        p = layer.paper
        diff = '' if p is None else ('0' if layer.macs == p.macs
                                      else '{:+,} (note {})'.format(layer.macs - p.macs, i))
        out.append('| %d | %s | %d | %s | %s | %s | %s | %s | %s |' % (
            i, layer.operation, layer.rep, _n(p and p.macs), _n(layer.macs), diff,
            _n(p and p.filter_cx), _n(layer.filter_cx_paper_rule), _n(layer.filter_cx)))
    tm = sum(x.macs for x in a)
    out.append('| | **Total** | | %s | %s | %s | %s | %s | %s |' % (
        _n(PAPER_TABLE4_TOTAL[0]), _n(tm), '{:+,}'.format(tm - PAPER_TABLE4_TOTAL[0]),
        _n(PAPER_TABLE4_TOTAL[1]), _n(sum(x.filter_cx_paper_rule for x in a)),
        _n(sum(x.filter_cx for x in a))))
    out.append('')
    out.append('Notes:')
    out.append('')
    for i, note in sorted(PAPER_TABLE4_NOTES.items()):
        out.append('- Row %d: %s' % (i, note))
    out.append('- Filter Cx: ' + FILTER_CX_NOTE)
    out.append('- Trainable parameters of `irnet_a` (BN gamma/beta and biases included): '
               '{:,}.'.format(sum(x.params for x in a)))
    out += ['', '### IR-Net: MACs per operation for the three block kinds', '',
            '[B] adds SE (Ne/4 squeeze channels). [C] adds CondConv (4 experts) to every '
            'convolution of every block: "as counted" is our implementation (4 expert '
            'convolutions mixed at the output, plus the routing FC); "kernel mixing" is '
            'one convolution per example plus mixing the 4 kernels (4 |W|) and the routing '
            'FC, what an implementation that mixes kernels first costs.', '',
            '| # | operation | rep | [A] | [B] | [C] as counted | [C] kernel mixing |',
            '|' + '---|' * 7]
    for i, (la, lb, lc) in enumerate(zip(a, b, c)):
        out.append('| %d | %s | %d | %s | %s | %s | %s |' % (
            i, la.operation, la.rep, _n(la.macs), _n(lb.macs), _n(lc.macs),
            _n(lc.macs_efficient)))
    out.append('| | **Total** | | %s | %s | %s | %s |' % tuple(
        _n(sum(getattr(x, k) for x in rows)) for rows, k in
        ((a, 'macs'), (b, 'macs'), (c, 'macs'), (c, 'macs_efficient'))))
    out.append('| | **Params (trainable)** | | %s | %s | %s | |' % tuple(
        _n(sum(x.params for x in rows)) for rows in (a, b, c)))
    return '\n'.join(out)
