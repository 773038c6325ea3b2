"""Layers: activations, SE, MBBlock, IdleBlock, ISB, CondConv and the helpers they share."""
from .activations import HardSigmoid, HardSwish, Swish, get_act_layer
from .blocks import (classifier_head, SEModule, MBBlock, InvertedResidual, IdleBlock, InvertedShuffleBlock,
                     channel_shuffle, conv_bn_act, IDLE_SIDES)
from .condconv import CondConv2D
from .utils import walk_blocks
