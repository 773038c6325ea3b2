"""GluonCV-style model zoo: ``get_model(name, **kwargs)``, ``list_models()``, per-model
defaults (``get_model_cfg``) and the one builder funnel (:mod:`.builder`)."""
from .registry import register_model, get_model, list_models, is_model, get_model_cfg
from .builder import (PretrainedError, build_model, check_params_fit, features_of, init_or_load,
                      load_params_file, load_pretrained)
from . import hc
from .hc import HC_RECIPES, hc_net
from . import baselines  # IR-Net and SqueezeNext (hcnet.models.irnet, hcnet.models.sqnxt)
from .gluoncv_bridge import register_with_gluoncv, GLUONCV_VERSION, create_model, UnknownModelError

register_with_gluoncv()
