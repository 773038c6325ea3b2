"""Network families, each a pure builder (no weights): HCNet, IR-Net, SqueezeNext.

``build_*`` return uninitialised networks; the zoo (:mod:`hcnet.model_zoo`) names them,
initialises them or loads their published weights. Each family declares its
:class:`ModelCfg` (``DEFAULT_CFG``).
"""
from .cfg import IMAGENET_CFG, ModelCfg
from .hc import DEFAULT_CFG as HC_CFG, HCNet, build_hcnet, hc_cfg
from .irnet import DEFAULT_CFG as IRNET_CFG, IRNet, build_irnet
from .sqnxt import DEFAULT_CFG as SQNXT_CFG, SqueezeNext, build_squeezenext

__all__ = ['ModelCfg', 'IMAGENET_CFG', 'HCNet', 'build_hcnet', 'HC_CFG', 'hc_cfg', 'IRNet',
           'build_irnet', 'IRNET_CFG', 'SqueezeNext', 'build_squeezenext', 'SQNXT_CFG']
