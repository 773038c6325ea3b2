"""Layers: activations, SE, MBBlock, IdleBlock, ISB, CondConv and the helpers they share;
feature maps of a network (FeatureInfo, FeatureNet)."""
from .activations import HardSigmoid, HardSwish, Swish, get_act_layer
from .blocks import (classifier_head, SEModule, MBBlock, InvertedResidual, IdleBlock, InvertedShuffleBlock,
                     channel_shuffle, conv_bn_act, IDLE_SIDES)
from .condconv import CondConv2D
from .features import FeatureInfo, FeatureNet, feature_taps, resolve_out_indices
from .utils import block_name, named_blocks, walk_blocks
