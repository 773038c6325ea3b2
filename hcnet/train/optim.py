"""LB-SGD, the optimizer of the paper's distributed recipe, without host syncs.

MXNet 1.9's ``LBSGD`` is momentum SGD whose learning rate is multiplied either by
a warmup factor (strategies ``linear``, ``power2``, ``sqrt`` growing from 1 to
``batch_scale``) or, with strategy ``lars``, by a layer-wise ratio

    ratio = sqrt(|w|^2 / (|g|^2 + wd * |w|^2 + 1e-18)), clipped to [0.01, 100],

with ``g`` the gradient as it reaches the optimizer (before ``rescale_grad``).
Three problems: the ratio is computed with one ``asnumpy`` per parameter per step
(a device-to-host sync each), the warmup does nothing when ``batch_scale``
is 1, which is how it is used with a per-step lr schedule, and a gradient that
still carries a scale the trainer removes later -- AMP's loss scale (2^16 at the
start), or Horovod's averaging when it happens in ``rescale_grad`` -- gives another
ratio (under AMP every ratio clips to 0.01).

:class:`LBSGD` here keeps the update and the LARS ratio, takes its warmup from
the lr schedule (``hcnet.train.schedule.WarmupSchedule`` has linear, power2 and sqrt
warmup shapes), and computes all ratios of a step with the multi-tensor
operators ``multi_sum_sq`` and ``preloaded_multi_sgd_mom_update``: no host sync.
It is registered with MXNet as ``lbsgd``, replacing the built-in one, which stays
available as ``mxnet.optimizer.LBSGD``.

With ``lars_batch`` (the images of one update, all devices and processes together:
the trainer sets it), the ratio's gradient is ``g * rescale_grad * lars_batch``: the
gradient of the loss summed over the update's images, as MXNet's LBSGD sees it in a
float32 run of one process, whatever scale the arriving gradient still carries.
``rescale_grad`` is what the Gluon trainer multiplies the gradients by before the
update: ``1 / batch`` in float32, ``1 / (batch * loss_scale)`` under AMP
(``amp.scale_loss``), ``f / (batch * ranks)`` when Horovod averages in the framework
(NCCL < 2.10, Gloo; ``f`` its ``gradient_predivide_factor``, whose ``1 / f`` the
summed gradients already carry). In float32 on one process the factor is exactly 1,
so those runs are unchanged.
"""
import os

import mxnet as mx
from mxnet import nd
from mxnet.optimizer import Optimizer

__all__ = ['LBSGD']

_MXNET_LBSGD = mx.optimizer.LBSGD


class LBSGD(Optimizer):
    """Momentum SGD with optional LARS layer-wise rates, aggregated over parameters.

    Parameters
    ----------
    momentum : float
        Momentum (heavy ball, as ``sgd_mom_update``).
    lars : bool
        Scale each parameter's lr by MXNet LBSGD's clipped LARS ratio.
    lars_min, lars_max : float
        Clip range of the ratio (MXNet: 0.01 and 100).
    multi_precision : bool
        Keep float32 master weights for float16 parameters.
    aggregate_num : int
        Parameters updated per fused operator call (at most 60, MXNet's kernel
        limit; default ``MXNET_OPTIMIZER_AGGREGATION_SIZE`` or 32).
    lars_batch : int or None
        Images per update over all devices and processes: the LARS ratio then uses
        ``g * rescale_grad * lars_batch`` (see the module's docstring), which no loss
        scale changes. None: the gradient as it arrives (MXNet's rule).
    """

    def __init__(self, momentum=0.0, lars=False, lars_min=0.01, lars_max=100.0,
                 multi_precision=False, aggregate_num=None, lars_batch=None, **kwargs):
        super().__init__(multi_precision=multi_precision, **kwargs)
        self.momentum = momentum
        self.lars = lars
        self.lars_min, self.lars_max = lars_min, lars_max
        if lars_batch is not None and not lars_batch > 0:
            raise ValueError('lars_batch must be a positive number of images, not %r'
                             % (lars_batch,))
        self.lars_batch = lars_batch
        # MXNet's fused multi-tensor SGD kernels take at most 60 weights per call
        self.aggregate_num = min(60, aggregate_num or int(
            os.environ.get('MXNET_OPTIMIZER_AGGREGATION_SIZE', 32)))

    def create_state(self, index, weight):
        if self.momentum == 0.0:
            return None
        return nd.zeros(weight.shape, weight.context, dtype=weight.dtype, stype=weight.stype)

    def create_state_multi_precision(self, index, weight):
        if self.multi_precision and weight.dtype == 'float16':
            master = weight.astype('float32')
            return (self.create_state(index, master), master)
        return self.create_state(index, weight)

    def lars_grad_scale(self):
        """The factor that turns the arriving gradients into those the LARS ratio is
        computed from (1.0 without ``lars_batch``)."""
        if self.lars_batch is None:
            return 1.0
        return float(self.rescale_grad) * float(self.lars_batch)

    def _ratios(self, weights, grads, wds, grad_scale=1.0):
        """Clipped LARS ratios of all parameters, as one NDArray (no host sync);
        ``grad_scale`` multiplies the gradients first (:meth:`lars_grad_scale`)."""
        n = len(weights)
        w2 = nd.multi_sum_sq(*weights, num_arrays=n)
        g2 = nd.multi_sum_sq(*grads, num_arrays=n)
        if grad_scale != 1.0:
            # |s g|^2 = s^2 |g|^2: the sums of squares of the scaled gradients (which
            # are finite where s g is: AMP skips the steps whose g overflowed)
            g2 = g2 * (grad_scale * grad_scale)
        ratio = nd.sqrt(w2 / (g2 + wds * w2 + 1e-18))
        return nd.clip(ratio, self.lars_min, self.lars_max)

    def _update_impl(self, indices, weights, grads, states, multi_precision=False):
        if not isinstance(indices, (tuple, list)):
            indices, weights, grads, states = [indices], [weights], [grads], [states]
        self._update_count(indices)
        ctx = weights[0].context
        lrs = nd.array(self._get_lrs(indices), ctx=ctx, dtype='float32')
        wds = nd.array(self._get_wds(indices), ctx=ctx, dtype='float32')
        if self.lars:
            masters = [s[1] for s in states] if multi_precision else weights
            lrs = lrs * self._ratios(masters, [g.astype('float32', copy=False) for g in grads],
                                     wds, self.lars_grad_scale())
        kwargs = {'rescale_grad': self.rescale_grad}
        if self.clip_gradient:
            kwargs['clip_gradient'] = self.clip_gradient
        for start in range(0, len(indices), self.aggregate_num):
            end = min(start + self.aggregate_num, len(indices))
            self._apply(weights[start:end], grads[start:end], states[start:end],
                        lrs[start:end], wds[start:end], multi_precision, kwargs)

    def _apply(self, weights, grads, states, lrs, wds, multi_precision, kwargs):
        n = len(weights)
        if multi_precision:
            if self.momentum > 0:
                arrays = [a for w, g, s in zip(weights, grads, states) for a in (w, g, s[0], s[1])]
                nd.preloaded_multi_mp_sgd_mom_update(*arrays, lrs, wds, out=weights,
                                                     num_weights=n, momentum=self.momentum,
                                                     **kwargs)
            else:
                arrays = [a for w, g, s in zip(weights, grads, states) for a in (w, g, s[1])]
                nd.preloaded_multi_mp_sgd_update(*arrays, lrs, wds, out=weights, num_weights=n,
                                                 **kwargs)
        elif self.momentum > 0:
            arrays = [a for w, g, s in zip(weights, grads, states) for a in (w, g, s)]
            nd.preloaded_multi_sgd_mom_update(*arrays, lrs, wds, out=weights, num_weights=n,
                                              momentum=self.momentum, **kwargs)
        else:
            arrays = [a for w, g in zip(weights, grads) for a in (w, g)]
            nd.preloaded_multi_sgd_update(*arrays, lrs, wds, out=weights, num_weights=n,
                                          **kwargs)

    def update(self, index, weight, grad, state):
        self._update_impl(index, weight, grad, state, multi_precision=False)

    def update_multi_precision(self, index, weight, grad, state):
        use_mp = self.multi_precision and (
            weight[0] if isinstance(weight, (list, tuple)) else weight).dtype == 'float16'
        self._update_impl(index, weight, grad, state, multi_precision=use_mp)


# Replace MXNet's ``lbsgd`` in the optimizer registry (mx.optimizer.register would
# warn about the override; the built-in class stays reachable as mx.optimizer.LBSGD).
Optimizer.opt_registry['lbsgd'] = LBSGD
