"""Make hcnet's networks reachable through ``gluoncv.model_zoo.get_model``.

GluonCV has no public registration hook: its ``get_model`` looks names up in
the module-level dict ``gluoncv.model_zoo.model_zoo._models``. This is the one
place that touches it, and only for the GluonCV release we pin and test
(``GLUONCV_VERSION``); any other release gets a warning and is left alone.
"""
import warnings
from importlib import metadata

from .registry import _MODELS

__all__ = ['GLUONCV_VERSION', 'register_with_gluoncv', 'create_model', 'UnknownModelError']

GLUONCV_VERSION = '0.10.5.post0'


def register_with_gluoncv():
    """Add every hcnet model to GluonCV's registry; return True if it was done."""
    try:
        version = metadata.version('gluoncv')
    except metadata.PackageNotFoundError:
        return False
    if version != GLUONCV_VERSION:
        warnings.warn('hcnet registers its models with GluonCV %s only (found %s); '
                      'use hcnet.get_model instead' % (GLUONCV_VERSION, version))
        return False
    from gluoncv.model_zoo import model_zoo
    registry = getattr(model_zoo, '_models', None)
    if not isinstance(registry, dict):
        warnings.warn('gluoncv.model_zoo.model_zoo._models is missing; '
                      'hcnet models are not visible through GluonCV')
        return False
    for name, constructor in _MODELS.items():
        registry.setdefault(name, constructor)
    return True


class UnknownModelError(ValueError):
    """A name that is neither an hcnet nor a GluonCV model."""


def create_model(name, pretrained=False, ctx=None, **kwargs):
    """Build ``name`` from hcnet's zoo or, failing that, GluonCV's, ready to run on ``ctx``.

    hcnet names go through the zoo's funnel; GluonCV's networks are built by GluonCV and
    initialised like ours (He, fan-in) unless ``pretrained``. Raises
    :class:`UnknownModelError` for a name neither knows.
    """
    import mxnet as mx
    from .builder import INIT
    from .registry import get_model, is_model
    ctx = ctx or mx.cpu()
    if is_model(name):
        return get_model(name, pretrained=pretrained or False, ctx=ctx, **kwargs)
    import gluoncv
    if str(name).lower() not in gluoncv.model_zoo.get_model_list():
        raise UnknownModelError('%r is neither an hcnet nor a GluonCV model' % (name,))
    net = gluoncv.model_zoo.get_model(name, pretrained=bool(pretrained), **kwargs)
    if not pretrained:
        net.initialize(INIT, ctx=ctx)
    else:
        net.collect_params().reset_ctx(ctx)
    return net
