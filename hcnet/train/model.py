"""The network of a run: built from ``model.*`` (hcnet's zoo or GluonCV's), parameters
materialised on the run's contexts."""
import mxnet as mx
from mxnet import autograd, gluon

from ..model_zoo import UnknownModelError, create_model, is_model

__all__ = ['build_model', 'materialise', 'check_model_name']


def build_model(cfg, ctx, pretrained=True):
    """Build ``model.name`` (hcnet zoo or GluonCV zoo) on ``ctx``, parameters materialised.

    ``pretrained=False`` ignores ``model.pretrained`` (random initial weights).
    """
    name = cfg['model.name']
    kwargs = dict(cfg['model.kwargs'], classes=cfg['model.classes'])
    pretrained = cfg['model.pretrained'] if pretrained else None
    try:
        net = create_model(name, pretrained=pretrained or False, ctx=ctx[0], **kwargs)
    except UnknownModelError:
        raise cfg.error('model.name', '= %r is neither an hcnet nor a GluonCV model' % name) \
            from None
    except TypeError as err:             # an argument the constructor does not take
        raise cfg.error('model.kwargs', '= %r does not fit %s: %s'
                        % (cfg['model.kwargs'], name, err)) from None
    net.collect_params().reset_ctx(ctx)
    size = cfg['data.input_size']
    materialise(net, mx.nd.zeros((1, 3, size, size), ctx=ctx[0]))
    return net


def materialise(net, x):
    """Give deferred parameters their shapes and initial values, without running ``net``.

    Shapes come from symbolic shape inference, not from a forward pass: an inference-mode
    forward on CPU makes MXNet's oneDNN convolution and dense operators convert the weight
    arrays themselves to blocked layouts, asynchronously and in place
    (``MKLDNNDataReorderAsync``), and training on such arrays is not reproducible on the
    threaded engine (see :class:`hcnet.train.evaluate.EvalTwin`). The initial values are the
    same as a forward pass would draw (parameters are initialised in registration order
    either way).
    """
    if isinstance(net, gluon.HybridBlock):
        net.infer_shape(x)
        for p in net.collect_params().values():
            if p._deferred_init:
                p._finish_deferred_init()  # what Gluon's own forward does after inferring shapes
    else:
        with autograd.pause():
            net(x)


def check_model_name(cfg):
    """``model.name`` is in hcnet's or GluonCV's zoo (a check on the installed registries,
    so it is not part of :func:`hcnet.train.config.validate`)."""
    name = cfg['model.name']
    if is_model(name):
        return
    from gluoncv.model_zoo.model_zoo import get_model_list
    if name.lower() not in get_model_list():
        raise cfg.error('model.name', '= %r is neither an hcnet nor a GluonCV model name' % name)
