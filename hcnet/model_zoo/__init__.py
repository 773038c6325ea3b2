"""GluonCV-style model zoo: ``get_model(name, **kwargs)`` and ``list_models()``."""
from .registry import register_model, get_model, list_models, is_model
from . import hc
from .hc import HC_RECIPES
from . import baselines  # IR-Net and SqueezeNext (hcnet.irnet, hcnet.sqnxt)
from .gluoncv_bridge import register_with_gluoncv, GLUONCV_VERSION

register_with_gluoncv()
