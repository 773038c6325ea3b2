"""Two comparison widths GluonCV's code builds but its model zoo does not name.

The paper's Table 2 compares with MobileNet v2 1.4 and ShuffleNet v2 2x. GluonCV 0.10.5
has the code for both but no zoo name (``get_model`` knows ``mobilenetv2_1.0`` ... ``_0.25``
and the 1x ``shufflenet_v2`` only), so a config could not name them. These builders make
them from GluonCV's own classes -- nothing is re-implemented here -- and the zoo registers
them as ``mobilenetv2_1.4`` and ``shufflenet_v2_2.0``
(:mod:`hcnet.model_zoo.baselines`):

* ``mobilenetv2_1.4``: ``gluoncv.model_zoo.mobilenet.MobileNetV2(1.4)``, which rounds
  widths with ``int(c * 1.4)`` (the MobileNetV2 reference rounds to multiples of 8), so
  it has fewer parameters than the 6.9 M quoted (see MODEL_ZOO.md, baselines);
* ``shufflenet_v2_2.0``: GluonCV's ``ShuffleNetV2`` stages made with
  ``make_stage(stage, multiplier=2)`` (244 / 488 / 976 channels) and the 2x paper's
  2048-wide conv5 -- GluonCV's ``ShuffleNetV2.__init__`` never passes a multiplier.

Both expect GluonCV's ImageNet input (224x224, its mean/std: :data:`DEFAULT_CFG`).
"""
from mxnet.gluon import nn

from .cfg import IMAGENET_CFG

__all__ = ['build_mobilenet_v2', 'build_shufflenet_v2', 'GLUONCV_WIDTHS', 'DEFAULT_CFG']

#: GluonCV's ImageNet defaults (224x224)
DEFAULT_CFG = IMAGENET_CFG


def build_mobilenet_v2(multiplier=1.4, classes=1000, norm_layer=nn.BatchNorm, norm_kwargs=None):
    """GluonCV's MobileNetV2 at ``multiplier``, uninitialised."""
    from gluoncv.model_zoo.mobilenet import MobileNetV2
    net = MobileNetV2(multiplier, classes=classes, norm_layer=norm_layer,
                      norm_kwargs=norm_kwargs)
    net.classes = classes
    return net


def build_shufflenet_v2(multiplier=2, classes=1000):
    """GluonCV's ShuffleNetV2 at ``multiplier`` (0.5, 1, 1.5 or 2), uninitialised."""
    from gluoncv.model_zoo.shufflenet import ShuffleNetV2, _conv2d

    class _ShuffleNetV2(ShuffleNetV2):
        def __init__(self):
            nn.HybridBlock.__init__(self)       # ShuffleNetV2.__init__ fixes the width at 1x
            with self.name_scope():
                self.features = nn.HybridSequential(prefix='')
                self.features.add(_conv2d(channel=24, kernel=3, stride=2, padding=1,
                                          use_act=True, use_bias=False))
                self.features.add(nn.MaxPool2D(pool_size=3, strides=2, padding=1))
                for stage in (2, 3, 4):
                    self.features.add(self.make_stage(stage, multiplier))
                self.features.add(_conv2d(channel=2048 if multiplier == 2 else 1024, kernel=1,
                                          stride=1, use_act=True, use_bias=False))
                self.features.add(nn.GlobalAvgPool2D())
                self.output = nn.Dense(classes)

    net = _ShuffleNetV2()
    net.classes = classes
    return net


#: zoo name -> (builder, width)
GLUONCV_WIDTHS = {
    'mobilenetv2_1.4': (build_mobilenet_v2, 1.4),
    'shufflenet_v2_2.0': (build_shufflenet_v2, 2),
}
