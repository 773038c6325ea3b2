"""Zoo entries for the networks hcnet implements besides hybrid composition.

* IR-Net (``ir-net.txt``): ``irnet_a`` (plain inverted residual blocks),
  ``irnet_b`` (+ SE), ``irnet_c`` (+ SE + CondConv), 56x56 inputs, 100 classes
  by default (:mod:`hcnet.models.irnet`);
* SqueezeNext, which GluonCV lacks: ``sqnxt23_w1``, ``sqnxt23_w3d2``,
  ``sqnxt23_w2``, ``sqnxt23v5_w1``, ``sqnxt23v5_w3d2``, ``sqnxt23v5_w2``
  (:mod:`hcnet.models.sqnxt`), 224x224 (or the authors' 227x227), 1000 classes.

The other small-network baselines (SqueezeNet, Xception, MobileNet v1/v2,
ShuffleNet v1/v2, ...) are GluonCV's own and are *not* registered here: build
them with ``gluoncv.model_zoo.get_model`` (names in
:data:`hcnet.paper.baselines.GLUONCV_BASELINES`).
"""
import mxnet as mx

from ..models.irnet import DEFAULT_CFG as IRNET_CFG, build_irnet
from ..models.sqnxt import DEFAULT_CFG as SQNXT_CFG, SQNXT_MODELS, build_squeezenext
from .builder import build_model
from .registry import register_model

__all__ = ['IRNET_MODELS', 'SQNXT_MODELS']

#: zoo name -> block kind
IRNET_MODELS = {'irnet_a': 'A', 'irnet_b': 'B', 'irnet_c': 'C'}


def _irnet(name, kind):
    def build(pretrained=False, ctx=mx.cpu(), root=None, pretrained_classifier=True, **kwargs):
        return build_model(build_irnet, name, block=kind, pretrained=pretrained, ctx=ctx,
                           root=root, pretrained_classifier=pretrained_classifier,
                           default_cfg=IRNET_CFG, **kwargs)
    build.__name__ = name
    build.__doc__ = ('IR-Net with blocks [%s] (56x56, classes=100 by default). Keyword '
                     'arguments: see hcnet.models.build_irnet.' % kind)
    return build


def _sqnxt(name, version, width):
    def build(pretrained=False, ctx=mx.cpu(), root=None, pretrained_classifier=True, **kwargs):
        return build_model(build_squeezenext, name, version=version, width=width,
                           pretrained=pretrained, ctx=ctx, root=root,
                           pretrained_classifier=pretrained_classifier, default_cfg=SQNXT_CFG,
                           **kwargs)
    build.__name__ = name
    build.__doc__ = ('%g-SqNxt-%s (ImageNet, classes=1000 by default). Keyword arguments: '
                     'see hcnet.models.build_squeezenext.' % (width, version))
    return build


for _name, _kind in IRNET_MODELS.items():
    register_model(_irnet(_name, _kind), cfg=IRNET_CFG)
for _name, (_version, _width) in SQNXT_MODELS.items():
    register_model(_sqnxt(_name, _version, _width), cfg=SQNXT_CFG)
