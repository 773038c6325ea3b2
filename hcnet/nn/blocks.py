"""Building blocks of hybrid-composition networks (Gluon HybridBlocks).

* :class:`SEModule`      squeeze-and-excitation (MobileNetV3: ReLU + hard-sigmoid,
                         EfficientNet: swish + sigmoid; passed in as layer types).
* :class:`MBBlock`       inverted residual (MobileNetV2/V3, EfficientNet's MBConv).
* :class:`InvertedResidual` its layers and forward pass, shared with blocks that are
                         no MBBlock (IR-Net's :class:`hcnet.models.irnet.CondConvIRB`).
* :class:`IdleBlock`     Xu et al. 2019, section 2.4: half the channels idle.
* :class:`InvertedShuffleBlock` (ISB) IdleBlock followed by a channel shuffle.

IdleBlock also has a documented variant for stride-2 / width-changing positions
(the paper's M=1 rows need one but do not define it): see its docstring.

Every block takes its layer types explicitly (``act_layer``, ``se_layer``,
``norm_layer`` + ``norm_kwargs``, and for the inverted residual ``conv_layer``);
nothing is read from module globals.
Every BatchNorm is built as ``norm_layer(in_channels=C, **norm_kwargs)``.
"""
import mxnet as mx
from mxnet.gluon import nn

from .activations import HardSigmoid

__all__ = ['classifier_head', 'SEModule', 'MBBlock', 'InvertedResidual', 'IdleBlock', 'InvertedShuffleBlock',
           'channel_shuffle', 'concat_channels', 'conv_bn_act', 'IDLE_SIDES']

#: Sides of an IdleBlock (see :class:`IdleBlock` for which is which).
IDLE_SIDES = ('L', 'R')


def _relu():
    return nn.Activation('relu')


def classifier_head(in_units, classes, dropout=0.0, use_bias=True,
                    weight_initializer=mx.init.Normal(0.01)):
    """The classifier every hcnet network ends with, named ``output_``: flatten, optional
    dropout, a Dense layer (weights N(0, 0.01) unless ``weight_initializer`` says otherwise;
    None: the network's initializer). Replace ``net.output`` to
    fine-tune on other classes; the store loads everything but it with
    ``pretrained_classifier=False``."""
    output = nn.HybridSequential(prefix='output_')
    with output.name_scope():
        output.add(nn.Flatten())
        if dropout:
            output.add(nn.Dropout(dropout))
        output.add(nn.Dense(classes, in_units=in_units, use_bias=use_bias,
                            weight_initializer=weight_initializer))
    return output


def conv_bn_act(in_channels, channels, kernel_size=1, stride=1, groups=1, act_layer=None,
                norm_layer=nn.BatchNorm, norm_kwargs=None, prefix=None, conv_layer=nn.Conv2D):
    """Convolution (no bias) + ``norm_layer`` + optional activation, as a HybridSequential.

    The convolution is ``conv_layer(channels, kernel_size, strides=stride,
    padding=kernel_size // 2, groups=groups, use_bias=False, in_channels=in_channels)``
    (:class:`mxnet.gluon.nn.Conv2D`'s signature; the default).
    """
    seq = nn.HybridSequential(prefix=prefix)
    with seq.name_scope():
        seq.add(conv_layer(channels, kernel_size, strides=stride, padding=kernel_size // 2,
                           groups=groups, use_bias=False, in_channels=in_channels))
        seq.add(norm_layer(in_channels=channels, **(norm_kwargs or {})))
        if act_layer is not None:
            seq.add(act_layer())
    return seq


def channel_shuffle(F, x, groups, channels):
    """ShuffleNet's channel shuffle of an NCHW tensor with ``channels`` channels.

    (N, g*c, H, W) -> view (N, g, c, H*W) -> swap g and c -> back to (N, g*c, H, W).
    Written without Reshape's special codes -2/-3/-4, which MXNet's ONNX exporter
    cannot translate.
    """
    y = F.reshape(x, shape=(0, groups, channels // groups, -1))
    y = F.swapaxes(y, 1, 2)
    y = F.reshape(y, shape=(0, channels, -1))
    return F.reshape_like(y, x)


def concat_channels(F, first, second):
    """Concatenate two NCHW tensors of equal spatial size along channels.

    MXNet 1.9.1's oneDNN concat fails in the backward pass ("could not construct
    a sub-memory") when the incoming gradient is in a blocked layout and the split
    point does not fall on a block boundary, which happens inside networks for
    several IdleBlock widths (24, 40, 112, ...). Concatenating (N, C, H*W) views
    routes the gradient through a plain layout; the values are identical.
    """
    out = F.concat(F.reshape(first, shape=(0, 0, -1)), F.reshape(second, shape=(0, 0, -1)), dim=1)
    return F.reshape_like(out, first, lhs_begin=2, lhs_end=3, rhs_begin=2, rhs_end=4)


class SEModule(nn.HybridBlock):
    """Squeeze-and-excitation: global pool, 1x1 reduce + act, 1x1 expand + gate, rescale.

    Parameters
    ----------
    channels : int
        Width of the tensor being rescaled.
    se_channels : int
        Width of the squeeze (bottleneck) layer.
    act_layer, gate_layer : callable
        Factories for the inner activation and the gate (ReLU / hard-sigmoid for
        MobileNetV3, swish / sigmoid for EfficientNet).
    """

    def __init__(self, channels, se_channels, act_layer=_relu, gate_layer=HardSigmoid, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.reduce = nn.Conv2D(se_channels, 1, in_channels=channels)
            self.act = act_layer()
            self.expand = nn.Conv2D(channels, 1, in_channels=se_channels)
            self.gate = gate_layer()

    def hybrid_forward(self, F, x):
        w = F.contrib.AdaptiveAvgPooling2D(x, output_size=1)
        w = self.gate(self.expand(self.act(self.reduce(w))))
        return F.broadcast_mul(x, w)


class InvertedResidual(nn.HybridBlock):
    """The inverted residual's layers and forward pass (see :class:`MBBlock`).

    :class:`MBBlock` is this block; other blocks of the same structure subclass
    this class rather than MBBlock (:class:`hcnet.models.irnet.CondConvIRB`, whose
    convolutions are CondConvs), because ``isinstance(block, MBBlock)`` promises
    more than the structure: :mod:`hcnet.deploy` rewrites an MBBlock's
    convolutions as :class:`mxnet.gluon.nn.Conv2D` layers (folded BatchNorms,
    channel layouts, split producers). A block that is no MBBlock is emitted by
    deploy's generic fallback, as a whole. Parameters as :class:`MBBlock`.

    Attributes: ``in_channels``, ``out_channels``, ``use_residual``, ``body``
    (the layers up to the residual add), ``drop`` (drop-connect or None).
    """

    def __init__(self, in_channels, exp_channels, out_channels, kernel_size=3, stride=1,
                 se_channels=0, act_layer=_relu, se_layer=SEModule, drop_connect=0.0,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, conv_layer=nn.Conv2D, **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.use_residual = stride == 1 and in_channels == out_channels
        common = dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs, conv_layer=conv_layer)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix='')
            if exp_channels != in_channels:
                self.body.add(conv_bn_act(in_channels, exp_channels, 1, act_layer=act_layer,
                                          prefix='expand_', **common))
            self.body.add(conv_bn_act(exp_channels, exp_channels, kernel_size, stride,
                                      groups=exp_channels, act_layer=act_layer,
                                      prefix='dw_', **common))
            if se_channels:
                self.body.add(se_layer(exp_channels, se_channels, prefix='se_'))
            self.body.add(conv_bn_act(exp_channels, out_channels, 1, prefix='project_', **common))
            self.drop = (nn.Dropout(drop_connect, axes=(1, 2, 3))
                         if self.use_residual and drop_connect > 0 else None)

    def hybrid_forward(self, F, x):
        out = self.body(x)
        if self.use_residual:
            if self.drop is not None:
                out = self.drop(out)
            out = out + x
        return out


class MBBlock(InvertedResidual):
    """Inverted residual block (MBBlock).

    1x1 expand + BN + act (omitted when ``exp_channels == in_channels``),
    kxk depthwise with ``stride`` + BN + act, optional SE on the expanded width,
    1x1 project + BN (linear), and a residual add when ``stride == 1`` and
    ``in_channels == out_channels``. ``drop_connect`` > 0 drops the residual
    branch per example during training (stochastic depth, as EfficientNet).
    Children are named ``expand_``, ``dw_``, ``se_``, ``project_``.

    Parameters
    ----------
    in_channels, exp_channels, out_channels : int
        Input, expanded (depthwise) and output widths.
    kernel_size, stride : int
        Depthwise kernel and stride.
    se_channels : int
        Squeeze width of the SE module; 0 disables SE.
    act_layer : callable
        Activation factory for the expand and depthwise stages.
    se_layer : callable
        ``se_layer(channels, se_channels, prefix=...)`` builds the SE module.
    drop_connect : float
        Drop probability of the residual branch (only used with a residual).
    norm_layer, norm_kwargs
        Normalisation layer type and its keyword arguments.
    conv_layer : callable
        Convolution layer type of the expand, depthwise and project stages
        (default :class:`mxnet.gluon.nn.Conv2D`), called as
        ``conv_layer(channels, kernel_size, strides=, padding=, groups=,
        use_bias=False, in_channels=)`` (see :func:`conv_bn_act`); e.g.
        ``functools.partial(nn.Conv2D, weight_initializer=...)``. :mod:`hcnet.deploy`
        expects MBBlocks of :class:`mxnet.gluon.nn.Conv2D` layers (subclasses
        included); for other convolution types subclass :class:`InvertedResidual`
        instead, as :class:`hcnet.models.irnet.CondConvIRB` does.
    """


class IdleBlock(nn.HybridBlock):
    """IdleBlock (Xu et al. 2019, section 2.4, Eq. 2).

    The input ``x`` (``in_channels`` wide) is split along channels into
    ``x1`` = the first ``(1 - alpha) * in_channels`` channels (active) and
    ``x2`` = the last ``alpha * in_channels`` channels (idle). ``x1`` goes through
    the substituted MBBlock's transformation *at that MBBlock's expanded width*
    (1x1 ``x1 -> exp_channels``, kxk depthwise, SE, 1x1 back to ``len(x1)``, with
    the residual and drop-connect of an MBBlock); ``x2`` is copied unchanged.

    Sides. The paper contradicts itself: section 2.4's text calls
    ``concat(y1, x2)`` an L-IdleBlock, Figure 9's caption says an L-IdleBlock puts
    the untransformed branch first. We follow Figure 9, the only reading under
    which the paper's receptive-field argument holds (two stacked R-IdleBlocks
    leave one branch untransformed, an L- then an R-IdleBlock transform both once):

    * ``side='L'``: ``concat(x2, y1)`` -- the idle channels move to the front;
    * ``side='R'``: ``concat(y1, x2)`` -- the idle channels stay where they were
      (the last ``alpha * in_channels``), so a run of R-IdleBlocks keeps
      transforming the same channels.

    ``shuffle=True`` adds a 2-group channel shuffle after the concatenation,
    which makes the block an Inverted Shuffle Block (ISB, section 4.6.1).

    Reduction variant (``stride > 1`` or ``out_channels != in_channels``). The
    paper's M=1 rows (Tables 5 and 7) replace "14 out of 15 MBBlocks", stride-2
    and width-changing ones included, without saying how an IdleBlock strides or
    widens. Our design: the active branch is an MBBlock with the substituted
    block's kernel, stride, expanded width, SE and activation that projects to
    ``out_channels - len(x2)`` channels (no residual, shapes differ); the idle
    half stays parameter-free -- unchanged at stride 1, 3x3 average-pooled with
    the stride otherwise (ShuffleNet v1's shortcut), so it aligns with ``y1``.
    Sides and shuffle behave as above.
    """

    def __init__(self, in_channels, exp_channels, out_channels=None, kernel_size=3, stride=1,
                 se_channels=0, side='R', alpha=0.5, shuffle=False, act_layer=_relu,
                 se_layer=SEModule, drop_connect=0.0, norm_layer=nn.BatchNorm,
                 norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        if side not in IDLE_SIDES:
            raise ValueError('IdleBlock side must be one of %s, got %r' % (IDLE_SIDES, side))
        out_channels = in_channels if out_channels is None else out_channels
        self.side, self.shuffle, self.alpha = side, shuffle, alpha
        self.out_channels = out_channels
        self.idle_channels = int(round(in_channels * alpha))
        self.active_channels = in_channels - self.idle_channels
        if not 0 < self.idle_channels < in_channels:
            raise ValueError('idle factor alpha=%s leaves no active or no idle channel of %d'
                             % (alpha, in_channels))
        if out_channels <= self.idle_channels:
            raise ValueError('IdleBlock needs out_channels (%d) > idle channels (%d)'
                             % (out_channels, self.idle_channels))
        with self.name_scope():
            self.active = MBBlock(self.active_channels, exp_channels,
                                  out_channels - self.idle_channels, kernel_size, stride,
                                  se_channels=se_channels, act_layer=act_layer,
                                  se_layer=se_layer, drop_connect=drop_connect,
                                  norm_layer=norm_layer, norm_kwargs=norm_kwargs, prefix='')
            self.pool = (nn.AvgPool2D(3, stride, padding=1, count_include_pad=False)
                         if stride > 1 else None)

    def hybrid_forward(self, F, x):
        x1 = F.slice_axis(x, axis=1, begin=0, end=self.active_channels)
        x2 = F.slice_axis(x, axis=1, begin=self.active_channels, end=None)
        y1 = self.active(x1)
        if self.pool is not None:
            x2 = self.pool(x2)
        first, second = (x2, y1) if self.side == 'L' else (y1, x2)
        out = concat_channels(F, first, second)
        if self.shuffle:
            out = channel_shuffle(F, out, 2, self.out_channels)
        return out


class InvertedShuffleBlock(IdleBlock):
    """Inverted Shuffle Block (ISB): an :class:`IdleBlock` followed by a channel shuffle."""

    def __init__(self, in_channels, exp_channels, **kwargs):
        kwargs.setdefault('shuffle', True)
        super().__init__(in_channels, exp_channels, **kwargs)
