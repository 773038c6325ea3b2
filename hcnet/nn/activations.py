"""Activations used by MobileNetV3 and EfficientNet, as Gluon HybridBlocks.

``get_act_layer(name)`` turns the short names used in the base specs
(``relu``, ``hswish``, ``swish``, ``sigmoid``, ``hsigmoid``) into a
zero-argument factory, so blocks receive a layer *type* and never look one
up themselves.
"""
from mxnet.gluon import nn

__all__ = ['HardSigmoid', 'HardSwish', 'Swish', 'get_act_layer', 'ACTIVATIONS']


class HardSigmoid(nn.HybridBlock):
    """``relu6(x + 3) / 6`` (MobileNetV3's piecewise-linear sigmoid)."""

    def hybrid_forward(self, F, x):
        return F.hard_sigmoid(x, alpha=1.0 / 6, beta=0.5)


class HardSwish(nn.HybridBlock):
    """``x * relu6(x + 3) / 6`` (MobileNetV3's h-swish)."""

    def hybrid_forward(self, F, x):
        return x * F.hard_sigmoid(x, alpha=1.0 / 6, beta=0.5)


class Swish(nn.HybridBlock):
    """``x * sigmoid(x)`` (EfficientNet's swish / SiLU, beta fixed at 1)."""

    def hybrid_forward(self, F, x):
        return x * F.sigmoid(x)


def _relu():
    return nn.Activation('relu')


def _sigmoid():
    return nn.Activation('sigmoid')


ACTIVATIONS = {
    'relu': _relu,
    'sigmoid': _sigmoid,
    'hsigmoid': HardSigmoid,
    'hswish': HardSwish,
    'swish': Swish,
}


def get_act_layer(name):
    """Return a factory (callable with no arguments) for the activation ``name``."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError('unknown activation %r; choose one of %s'
                         % (name, ', '.join(sorted(ACTIVATIONS)))) from None
