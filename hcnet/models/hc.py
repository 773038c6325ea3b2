"""The hybrid-composition network: a Gluon HybridBlock built from resolved block specs."""
from functools import partial

from mxnet.gluon import nn

from ..arch import compose, get_base_spec, resolve
from .cfg import ModelCfg
from ..nn import classifier_head, IdleBlock, MBBlock, SEModule, conv_bn_act, get_act_layer
from ..nn.features import feature_taps

__all__ = ['HCNet', 'build_hcnet', 'DEFAULT_CFG', 'hc_cfg', 'HEAD_IN_FEATURES']

#: ImageNet at 224x224 (the paper's Tables 1-7)
DEFAULT_CFG = ModelCfg(input_size=224, classes=1000)

#: Bases whose 1x1 convolution before pooling ends the body rather than starting the head,
#: so it is their last feature map (``feature_info``): MobileNetV3's 960 channels (its head
#: is the 1280-wide convolution after pooling; timm builds the 960 as ``blocks.6``), where
#: EfficientNet's 1280 is its head (timm's ``conv_head``: the last map is the 320 of stage 7).
HEAD_IN_FEATURES = frozenset({'mobilenetv3_large'})


def hc_cfg(base):
    """The :class:`ModelCfg` of networks on ``base``: its resolution, and the reference's
    evaluation crop there (resize to size + 32, centre crop: ``crop_ratio = size / (size +
    32)``, TF EfficientNet's ``CROP_PADDING``; 0.875 at 224, so :data:`DEFAULT_CFG`)."""
    size = get_base_spec(base).resolution
    if size == DEFAULT_CFG.input_size:
        return DEFAULT_CFG
    return ModelCfg(input_size=size, crop_ratio=size / (size + 32.0), classes=1000)


class HCNet(nn.HybridBlock):
    """Stem, stages of MBBlocks / IdleBlocks, head and classifier.

    Parameters
    ----------
    base : BaseSpec or str
        Base network (stem, head, SE rules and activations come from it).
    blocks : list of BlockSpec
        Resolved blocks (:func:`hcnet.arch.resolve`).
    pattern : Pattern, optional
        The pattern the blocks were resolved from (kept for display).
    classes : int
        Number of output classes.
    alpha : float
        Idle factor of the IdleBlocks.
    dropout : float, optional
        Dropout before the classifier (default: the base spec's).
    norm_layer, norm_kwargs
        Normalisation layer type and keyword arguments, used for every BatchNorm.

    ``features`` ends in global average pooling, so any input size works;
    ``output`` is the classifier (replace it to fine-tune on other classes).
    Blocks are named by position, ``stage3_block2_`` (1-based), so inserting a
    block shifts names only inside its own stage.

    ``feature_info`` lists the feature maps (:mod:`hcnet.nn.features`): the last block at
    each of strides 2, 4, 8, 16, 32 (the head's convolution for :data:`HEAD_IN_FEATURES`);
    ``get_model(name, features_only=True)`` returns them.
    """

    def __init__(self, base, blocks, pattern=None, classes=1000, alpha=0.5, dropout=None,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.base = base = get_base_spec(base)
        self.block_specs = list(blocks)
        self.pattern = pattern
        self.classes = classes
        norm = dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        se_layer = partial(SEModule, act_layer=get_act_layer(base.se_act),
                           gate_layer=get_act_layer(base.se_gate))
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            self.features.add(conv_bn_act(3, base.stem_channels, 3, 2,
                                          act_layer=get_act_layer(base.stem_act),
                                          prefix='stem_', **norm))
            stage, current = None, None
            for spec in self.block_specs:
                stage_name, block_name = spec.name.split('_')
                if stage_name != current:
                    stage, current = nn.HybridSequential(prefix=stage_name + '_'), stage_name
                    self.features.add(stage)
                with stage.name_scope():
                    stage.add(_make_block(spec, alpha, se_layer, block_name + '_', norm))
            last = self.block_specs[-1].out_channels
            self.features.add(conv_bn_act(last, base.head_channels, 1,
                                          act_layer=get_act_layer(base.head_act),
                                          prefix='head_', **norm))
            self.features.add(nn.GlobalAvgPool2D())
            width = base.head_channels
            if base.pre_logits:
                self.features.add(nn.Conv2D(base.pre_logits, 1, in_channels=width,
                                            prefix='prelogits_'))
                self.features.add(get_act_layer(base.head_act)())
                width = base.pre_logits
            self.output = classifier_head(width, classes,
                                          base.dropout if dropout is None else dropout)
        self.feature_info = feature_taps(self._feature_units())

    def _feature_units(self):
        """The trunk's blocks (stem, every block, the head convolution when it ends the
        body) with their output widths and strides, from the specs the network was built of."""
        base, reduction = self.base, 2                 # the stem's stride
        units = [dict(module='stem', num_chs=base.stem_channels, reduction=reduction)]
        for spec in self.block_specs:
            reduction *= spec.stride
            units.append(dict(module=spec.name, num_chs=spec.out_channels, reduction=reduction))
        if base.name in HEAD_IN_FEATURES:
            units.append(dict(module='head', num_chs=base.head_channels, reduction=reduction))
        return units

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def _make_block(spec, alpha, se_layer, prefix, norm):
    common = dict(kernel_size=spec.kernel, stride=spec.stride, se_channels=spec.se_channels,
                  act_layer=get_act_layer(spec.act), se_layer=se_layer,
                  drop_connect=spec.drop_connect, prefix=prefix, **norm)
    if spec.kind == 'M':
        return MBBlock(spec.in_channels, spec.exp_channels, spec.out_channels, **common)
    return IdleBlock(spec.in_channels, spec.exp_channels, spec.out_channels, side=spec.side,
                     alpha=alpha, shuffle=spec.shuffle, **common)


def build_hcnet(base, *, policy='none', budget=None, insert='I', count=1, at='adjacent',
                stages=None, sides=None, block='idle', pattern=None, idle_side='R', alpha=0.5,
                classes=1000, dropout=None, drop_connect=None, norm_layer=nn.BatchNorm,
                norm_kwargs=None, **kwargs):
    """Build an uninitialised hybrid-composition network from a base spec and a policy.

    Composition arguments (``policy``, ``budget``, ``insert``, ``count``, ``at``,
    ``stages``, ``sides``, ``block``, ``pattern``) are those of
    :func:`hcnet.arch.compose`. Initialising or loading weights is the zoo's step
    (:func:`hcnet.hc_net`, :func:`hcnet.get_model`).
    """
    pat = compose(base, policy, budget=budget, insert=insert, count=count, at=at,
                  stages=stages, sides=sides, block=block, pattern=pattern)
    blocks = resolve(base, pat, idle_side=idle_side, drop_connect=drop_connect)
    return HCNet(base, blocks, pattern=pat, classes=classes, alpha=alpha, dropout=dropout,
                 norm_layer=norm_layer, norm_kwargs=norm_kwargs, **kwargs)
