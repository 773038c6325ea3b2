"""hcnet: Hybrid Composition with IdleBlock (Xu et al., 2019) in MXNet Gluon."""
__version__ = '0.1.0'

from . import arch, nn
from .network import HCNet, hc_net
from .complexity import count
from .model_zoo import get_model, list_models, register_model

__all__ = ['HCNet', 'hc_net', 'count', 'get_model', 'list_models', 'register_model',
           'arch', 'nn', '__version__']
