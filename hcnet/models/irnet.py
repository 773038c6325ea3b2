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
breakdown gives the paper's Table 4 layer by layer (:mod:`hcnet.paper.irnet_table4`).

The paper's Table 4 (and ours, measured) is :mod:`hcnet.paper.irnet_table4`;
CondConv is :class:`hcnet.nn.CondConv2D`.
"""
from functools import partial

from mxnet.gluon import nn

from ..nn import classifier_head, InvertedResidual, MBBlock, SEModule, conv_bn_act, get_act_layer
from ..nn.condconv import CondConv2D
from ..nn.features import feature_taps
from .cfg import ModelCfg

__all__ = ['CondConvIRB', 'IRNet', 'build_irnet', 'IRNET_TABLE1', 'IRNET_KINDS',
           'DEFAULT_CFG']

#: ImageNet downsampled by 4 to 56x56, 100 classes (the paper's setting)
DEFAULT_CFG = ModelCfg(input_size=56, classes=100, crop_ratio=1.0)

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
    ``feature_info``: the last block at each stride -- 1, 2, 4, 8 with the paper's stem
    (IR-Net downsamples its 56x56 inputs 8x), 2 to 16 with ``stem_stride=2``.
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
            self.output = classifier_head(HEAD_CHANNELS, classes, dropout)
        self.feature_info = feature_taps(self._feature_units())

    def _feature_units(self):
        """Stem and blocks (from ``block_plan``) with their output widths and strides; the
        1280-wide head is not a feature map (as timm's MobileNetV2 ``conv_head``)."""
        reduction = self.stem_stride
        units = [dict(module='stem', num_chs=STEM_CHANNELS, reduction=reduction)]
        for name, _, _, out, stride in self.block_plan:
            reduction *= stride
            units.append(dict(module=name, num_chs=out, reduction=reduction))
        return units

    @property
    def stem(self):
        return self.features[0]

    @property
    def head(self):
        return self.features[len(self.features) - 2]

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def build_irnet(block='A', classes=100, norm_layer=nn.BatchNorm, norm_kwargs=None, dropout=0.0,
                **kwargs):
    """Build an uninitialised :class:`IRNet` with blocks of kind ``block``.

    Other keyword arguments go to :class:`IRNet` (``se_reduction``, ``num_experts``,
    ``stem_stride``). Weights: :func:`hcnet.get_model` (``irnet_a`` ... ``irnet_c``).
    """
    return IRNet(block, classes=classes, dropout=dropout, norm_layer=norm_layer,
                 norm_kwargs=norm_kwargs, **kwargs)
