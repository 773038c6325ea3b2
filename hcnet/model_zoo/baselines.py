"""Zoo entries for the networks hcnet implements besides hybrid composition.

* IR-Net (``ir-net.txt``): ``irnet_a`` (plain inverted residual blocks),
  ``irnet_b`` (+ SE), ``irnet_c`` (+ SE + CondConv), 56x56 inputs, 100 classes
  by default (:mod:`hcnet.models.irnet`);
* SqueezeNext, which GluonCV lacks: ``sqnxt23_w1``, ``sqnxt23_w3d2``,
  ``sqnxt23_w2``, ``sqnxt23v5_w1``, ``sqnxt23v5_w3d2``, ``sqnxt23v5_w2``
  (:mod:`hcnet.models.sqnxt`), 224x224 (or the authors' 227x227), 1000 classes.

* Two widths of the paper's Table 2 that GluonCV builds but does not name:
  ``mobilenetv2_1.4`` and ``shufflenet_v2_2.0``, made from GluonCV's own classes
  (:mod:`hcnet.models.gluoncv_widths`), 224x224, 1000 classes.

The other small-network baselines (SqueezeNet, Xception, MobileNet v1/v2,
ShuffleNet v1/v2, ...) are GluonCV's own and are *not* registered here: build
them with ``gluoncv.model_zoo.get_model`` (names in
:data:`hcnet.paper.baselines.GLUONCV_BASELINES`).
"""
import mxnet as mx

from ..models.gluoncv_widths import DEFAULT_CFG as GLUONCV_CFG, GLUONCV_WIDTHS
from ..models.irnet import DEFAULT_CFG as IRNET_CFG, build_irnet
from ..models.sqnxt import DEFAULT_CFG as SQNXT_CFG, SQNXT_MODELS, build_squeezenext
from .builder import build_model
from .registry import register_model

__all__ = ['IRNET_MODELS', 'SQNXT_MODELS', 'GLUONCV_WIDTHS']

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


def _gluoncv_width(name, builder, width):
    def build(pretrained=False, ctx=mx.cpu(), root=None, pretrained_classifier=True, **kwargs):
        return build_model(builder, name, multiplier=width, pretrained=pretrained, ctx=ctx,
                           root=root, pretrained_classifier=pretrained_classifier,
                           default_cfg=GLUONCV_CFG, **kwargs)
    build.__name__ = name
    build.__doc__ = ("GluonCV's %s at width %g, which GluonCV's zoo does not name (ImageNet, "
                     'classes=1000 by default). Keyword arguments: see hcnet.models.%s.'
                     % (builder.__name__[len('build_'):], width, builder.__name__))
    return build


for _name, _kind in IRNET_MODELS.items():
    register_model(_irnet(_name, _kind), cfg=IRNET_CFG)
for _name, (_version, _width) in SQNXT_MODELS.items():
    register_model(_sqnxt(_name, _version, _width), cfg=SQNXT_CFG)
for _name, (_builder, _width) in GLUONCV_WIDTHS.items():
    register_model(_gluoncv_width(_name, _builder, _width), cfg=GLUONCV_CFG)
