"""SqueezeNext (Gholami et al., "SqueezeNext: Hardware-Aware Neural Network Design", 2018).

SqueezeNext is not in GluonCV's model zoo; the small-network baselines of the
slides (``small-networks-slides.txt``) include 1.0/1.5/2.0-SqNxt-23 and -23v5.
The architecture follows the authors' published Caffe definitions
(github.com/amirgholami/SqueezeNext, ``*/train_val.prototxt``), which the
slides' parameter counts match; all details below were read from them.

* Stem: ``Conv kxk/2`` (no padding) with 64 filters, BN, ReLU, then a 3x3/2
  max pool (ceil mode, as Caffe). ``k = 7`` for SqNxt-23, ``5`` for the v2-v5
  variants (the slides: "replacing this 7x7 layer with a 5x5 convolution").
* Four stages of widths ``(32, 64, 128, 256) x width``; stage ``s > 1`` halves
  the resolution in its first block. Depths ``[6, 6, 8, 1]`` (23) or
  ``[2, 4, 14, 1]`` (23v5).
* Block (output width ``C``): ``1x1 -> C/2`` (stride), ``1x1 -> C/4``,
  ``3x1 -> C/2``, ``1x3 -> C/2`` (the two separable convolutions swap order
  from one block to the next), ``1x1 -> C``; every convolution bias-free and
  followed by BN and ReLU; the sum with the shortcut is followed by ReLU.
* Stage entry. SqNxt-23: the first block of every stage has a projection
  shortcut (``1x1`` convolution with the stride, BN, ReLU) and its main branch
  reads the stage input. SqNxt-23v5: a ``1x1`` convolution with the stride
  (BN, ReLU) first changes the width; the block's main branch and identity
  shortcut both read its output.
* Head: ``1x1 -> 128`` (BN, ReLU), global average pooling, a bias-free
  fully-connected classifier. The stem (64) and head (128) widths do not scale
  with the width multiplier.

The authors' models take 227x227 crops; any size works (224 gives 7x7 at the
end as well). Parameters (trainable, BN gamma/beta included) equal the counts
of the prototxts: 717,280 (1.0-SqNxt-23), 930,016 (1.0-SqNxt-23v5),
2,361,728 (2.0-SqNxt-23), 3,222,912 (2.0-SqNxt-23v5).

Names follow the usual zoo spelling: ``sqnxt23_w1``, ``sqnxt23_w3d2`` (1.5x),
``sqnxt23_w2``, ``sqnxt23v5_w1``, ``sqnxt23v5_w3d2``, ``sqnxt23v5_w2``.
Blocks are named ``stage<S>_block<B>_`` so :func:`hcnet.count` breaks them down.
"""
from mxnet.gluon import nn

from ..nn import block_name, classifier_head
from ..nn.features import feature_taps
from .cfg import ModelCfg

__all__ = ['SqnxtBlock', 'SqueezeNext', 'build_squeezenext', 'DEFAULT_CFG', 'SQNXT_VERSIONS', 'SQNXT_WIDTHS',
           'SQNXT_MODELS']

#: version -> (blocks per stage, stem kernel)
SQNXT_VERSIONS = {'23': ((6, 6, 8, 1), 7), '23v5': ((2, 4, 14, 1), 5)}
#: stage widths at width multiplier 1
SQNXT_WIDTHS = (32, 64, 128, 256)
STEM_CHANNELS, HEAD_CHANNELS = 64, 128
#: zoo name -> (version, width multiplier)
SQNXT_MODELS = {
    'sqnxt23_w1': ('23', 1.0), 'sqnxt23_w3d2': ('23', 1.5), 'sqnxt23_w2': ('23', 2.0),
    'sqnxt23v5_w1': ('23v5', 1.0), 'sqnxt23v5_w3d2': ('23v5', 1.5), 'sqnxt23v5_w2': ('23v5', 2.0),
}

#: the authors' evaluation: 227x227 crops of ImageNet (224 works as well)
DEFAULT_CFG = ModelCfg(input_size=224, classes=1000)


def _conv_bn_relu(in_channels, channels, kernel=(1, 1), stride=1, norm_layer=nn.BatchNorm,
                  norm_kwargs=None, prefix=None):
    kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    seq = nn.HybridSequential(prefix=prefix)
    with seq.name_scope():
        seq.add(nn.Conv2D(channels, kernel, strides=stride,
                          padding=(kernel[0] // 2, kernel[1] // 2), use_bias=False,
                          in_channels=in_channels))
        seq.add(norm_layer(in_channels=channels, **(norm_kwargs or {})))
        seq.add(nn.Activation('relu'))
    return seq


class SqnxtBlock(nn.HybridBlock):
    """SqueezeNext block ``in_channels -> out_channels``.

    Parameters
    ----------
    stride : int
        Stride of the first 1x1 convolution (and of the entry convolution).
    entry : str
        ``'identity'`` (needs ``stride == 1`` and equal widths), ``'project'``
        (SqNxt-23 stage entry: a 1x1 strided projection on the shortcut) or
        ``'pre'`` (SqNxt-23v5 stage entry: a 1x1 strided convolution before the
        block, whose output feeds both branches).
    vertical_first : bool
        ``3x1`` before ``1x3`` (else the reverse).
    """

    def __init__(self, in_channels, out_channels, stride=1, entry='identity',
                 vertical_first=True, norm_layer=nn.BatchNorm, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        if entry not in ('identity', 'project', 'pre'):
            raise ValueError('entry must be identity, project or pre, got %r' % entry)
        if entry == 'identity' and (stride != 1 or in_channels != out_channels):
            raise ValueError('an identity SqueezeNext block needs stride 1 and equal widths')
        self.entry = entry
        norm = dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        half, quarter = out_channels // 2, out_channels // 4
        sep = [(3, 1), (1, 3)] if vertical_first else [(1, 3), (3, 1)]
        with self.name_scope():
            self.pre = self.shortcut = None
            body_in, body_stride = in_channels, stride
            if entry == 'pre':
                self.pre = _conv_bn_relu(in_channels, out_channels, 1, stride, prefix='pre_',
                                         **norm)
                body_in, body_stride = out_channels, 1
            elif entry == 'project':
                self.shortcut = _conv_bn_relu(in_channels, out_channels, 1, stride,
                                              prefix='shortcut_', **norm)
            self.body = nn.HybridSequential(prefix='')
            self.body.add(_conv_bn_relu(body_in, half, 1, body_stride, prefix='reduce1_', **norm))
            self.body.add(_conv_bn_relu(half, quarter, 1, prefix='reduce2_', **norm))
            self.body.add(_conv_bn_relu(quarter, half, sep[0], prefix='sep1_', **norm))
            self.body.add(_conv_bn_relu(half, half, sep[1], prefix='sep2_', **norm))
            self.body.add(_conv_bn_relu(half, out_channels, 1, prefix='expand_', **norm))

    def hybrid_forward(self, F, x):
        if self.pre is not None:
            x = self.pre(x)
        identity = self.shortcut(x) if self.shortcut is not None else x
        return F.relu(self.body(x) + identity)


class SqueezeNext(nn.HybridBlock):
    """SqueezeNext of ``version`` (``'23'`` or ``'23v5'``) at ``width`` (1.0, 1.5, 2.0).

    ``features`` (stem, ``stage1_`` .. ``stage4_``, head, global pooling) and
    ``output`` (the classifier), as :class:`hcnet.HCNet`.
    ``feature_info``: the stem's activation (stride 2, before the max pool, as timm
    takes ResNet's ``act1``) and the last block of each stage (strides 4 to 32); the
    128-wide head is not a feature map.
    """

    def __init__(self, version='23', width=1.0, classes=1000, dropout=0.0,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        if version not in SQNXT_VERSIONS:
            raise ValueError('SqueezeNext version must be one of %s, got %r'
                             % (', '.join(SQNXT_VERSIONS), version))
        depths, stem_kernel = SQNXT_VERSIONS[version]
        self.version, self.width, self.classes = version, width, classes
        norm = dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        entry = 'pre' if version == '23v5' else 'project'
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            stem = nn.HybridSequential(prefix='stem_')
            with stem.name_scope():
                stem.add(nn.Conv2D(STEM_CHANNELS, stem_kernel, strides=2, use_bias=False,
                                   in_channels=3))
                stem.add(norm_layer(in_channels=STEM_CHANNELS, **(norm_kwargs or {})))
                stem.add(nn.Activation('relu'))
                stem.add(nn.MaxPool2D(3, 2, ceil_mode=True))
            self.features.add(stem)
            units = [dict(module=block_name(stem[2], self), num_chs=STEM_CHANNELS, reduction=2),
                     dict(module='stem', num_chs=STEM_CHANNELS, reduction=4)]
            cin, index, reduction = STEM_CHANNELS, 0, 4
            for s, (depth, base) in enumerate(zip(depths, SQNXT_WIDTHS), 1):
                cout = int(base * width)
                stage = nn.HybridSequential(prefix='stage%d_' % s)
                with stage.name_scope():
                    for b in range(1, depth + 1):
                        first = b == 1
                        stride = 2 if first and s > 1 else 1
                        stage.add(SqnxtBlock(cin, cout, stride=stride,
                                             entry=entry if first else 'identity',
                                             vertical_first=index % 2 == 0,
                                             prefix='block%d_' % b, **norm))
                        reduction *= stride
                        units.append(dict(module='stage%d_block%d' % (s, b), num_chs=cout,
                                          reduction=reduction))
                        cin, index = cout, index + 1
                self.features.add(stage)
            self.features.add(_conv_bn_relu(cin, HEAD_CHANNELS, 1, prefix='head_', **norm))
            self.features.add(nn.GlobalAvgPool2D())
            self.output = classifier_head(HEAD_CHANNELS, classes, dropout, use_bias=False,
                                          weight_initializer=None)
        self.feature_info = feature_taps(units)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def build_squeezenext(version='23', width=1.0, classes=1000, norm_layer=nn.BatchNorm,
                      norm_kwargs=None, dropout=0.0, **kwargs):
    """Build an uninitialised :class:`SqueezeNext` (weights: :func:`hcnet.get_model`)."""
    return SqueezeNext(version, width, classes=classes, dropout=dropout, norm_layer=norm_layer,
                       norm_kwargs=norm_kwargs, **kwargs)
