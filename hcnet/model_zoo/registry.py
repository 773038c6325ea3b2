"""A name -> constructor registry in the GluonCV / timm manner, with per-model defaults."""
from collections import OrderedDict

from ..models.cfg import IMAGENET_CFG

__all__ = ['register_model', 'get_model', 'list_models', 'is_model', 'get_model_cfg']

_MODELS = OrderedDict()
_CFGS = {}


def register_model(fn=None, *, name=None, cfg=None):
    """Register ``fn`` under ``name`` (default: its ``__name__``); usable as a decorator.

    ``cfg`` (a :class:`hcnet.models.ModelCfg`) holds the network's input defaults.
    """
    def wrap(f):
        key = (name or f.__name__).lower()
        if key in _MODELS and _MODELS[key] is not f:
            raise ValueError('model %r is registered twice' % key)
        _MODELS[key] = f
        if cfg is not None:
            _CFGS[key] = cfg
        return f
    return wrap(fn) if fn is not None else wrap


def is_model(name):
    """True if ``name`` is registered."""
    return str(name).lower() in _MODELS


def list_models(filter=None):
    """Registered names, in registration order; ``filter`` keeps names containing it."""
    return [n for n in _MODELS if filter is None or filter in n]


def get_model_cfg(name):
    """The :class:`~hcnet.models.ModelCfg` of ``name``: its own, or ImageNet's at 224
    (GluonCV's models and any network registered without one)."""
    return _CFGS.get(str(name).lower(), IMAGENET_CFG)


def get_model(name, **kwargs):
    """Build the network registered as ``name``.

    Keyword arguments go to its constructor: ``classes``, ``pretrained``, ``ctx``,
    ``root``, ``norm_layer``, ``norm_kwargs``, ``dropout`` and, for hybrid-composition
    networks, any composition argument of :func:`hcnet.hc_net`.

    ``features_only=True`` gives the network as a backbone (timm's ``features_only``): a
    HybridBlock whose output is the list of its feature maps -- ``out_indices`` chooses
    which (default all: strides 2, 4, 8, 16, 32 for the HC networks and SqueezeNext) -- and
    whose ``feature_info`` lists ``num_chs``, ``reduction`` and ``module`` of each
    (:func:`hcnet.model_zoo.build_model`).
    """
    key = str(name).lower()
    if key not in _MODELS:
        raise ValueError('%r is not a registered model; known models: %s'
                         % (name, ', '.join(_MODELS)))
    return _MODELS[key](**kwargs)
