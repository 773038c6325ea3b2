"""hcnet: Hybrid Composition with IdleBlock (Xu et al., 2019) in MXNet Gluon.

Layout (dependencies run one way, left to right)::

    nn -> arch -> models -> model_zoo -> train / deploy / bench / paper -> commands, cli

``store`` (pretrained files) and ``fileio`` (atomic writes) are leaves; ``complexity``
counts any built graph. See docs/architecture.md.
"""
__version__ = '0.1.0'

from . import arch, nn
from .models import HCNet
from .complexity import count
from .model_zoo import get_model, get_model_cfg, hc_net, list_models, register_model

__all__ = ['HCNet', 'hc_net', 'count', 'get_model', 'get_model_cfg', 'list_models',
           'register_model', 'arch', 'nn', '__version__']
