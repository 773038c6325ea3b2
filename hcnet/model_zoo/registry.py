"""A name -> constructor registry in the GluonCV / timm manner."""
from collections import OrderedDict

__all__ = ['register_model', 'get_model', 'list_models', 'is_model']

_MODELS = OrderedDict()


def register_model(fn=None, *, name=None):
    """Register ``fn`` under ``name`` (default: its ``__name__``); usable as a decorator."""
    def wrap(f):
        key = (name or f.__name__).lower()
        if key in _MODELS and _MODELS[key] is not f:
            raise ValueError('model %r is registered twice' % key)
        _MODELS[key] = f
        return f
    return wrap(fn) if fn is not None else wrap


def is_model(name):
    """True if ``name`` is registered."""
    return name.lower() in _MODELS


def list_models(filter=None):
    """Registered names, in registration order; ``filter`` keeps names containing it."""
    return [n for n in _MODELS if filter is None or filter in n]


def get_model(name, **kwargs):
    """Build the network registered as ``name``.

    Keyword arguments go to its constructor: ``classes``, ``pretrained``, ``ctx``,
    ``root``, ``norm_layer``, ``norm_kwargs``, ``dropout`` and, for hybrid-composition
    networks, any composition argument of :func:`hcnet.network.hc_net`.
    """
    key = name.lower()
    if key not in _MODELS:
        raise ValueError('%r is not a registered model; known models:\n\t%s'
                         % (name, '\n\t'.join(_MODELS)))
    return _MODELS[key](**kwargs)
