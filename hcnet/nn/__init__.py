"""Layers: activations and the blocks hybrid-composition networks are made of."""
from .activations import HardSigmoid, HardSwish, Swish, get_act_layer
from .blocks import (SEModule, MBBlock, InvertedResidual, IdleBlock, InvertedShuffleBlock,
                     channel_shuffle, conv_bn_act, IDLE_SIDES)
