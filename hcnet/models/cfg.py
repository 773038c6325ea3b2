"""Per-model defaults (timm's ``pretrained_cfg``): what a network expects of its input.

Each model module declares a :class:`ModelCfg`; the zoo attaches it to every network it
builds (``net.default_cfg``) and :func:`hcnet.model_zoo.get_model_cfg` returns it by
name. ``export``, ``eval`` and the store read input size, normalisation and the
evaluation crop from here instead of repeating constants.
"""
from dataclasses import asdict, dataclass, field
from typing import Tuple

__all__ = ['ModelCfg', 'IMAGENET_MEAN', 'IMAGENET_STD', 'IMAGENET_CFG']

#: ImageNet channel statistics of RGB images in [0, 1] (GluonCV's, torchvision's)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelCfg:
    """What a network expects: input resolution, normalisation, evaluation crop, classes."""
    input_size: int = 224                         # square training/evaluation resolution
    mean: Tuple[float, float, float] = field(default=IMAGENET_MEAN)   # per RGB channel, [0, 1] scale
    std: Tuple[float, float, float] = field(default=IMAGENET_STD)
    crop_ratio: float = 0.875                     # evaluation: resize short side to size / ratio, centre crop
    classes: int = 1000                           # classes of the published weights

    def to_dict(self):
        return asdict(self)


#: GluonCV's ImageNet models, and the default for any network without its own cfg
IMAGENET_CFG = ModelCfg()
