"""CondConv2D: a conditionally parameterised convolution (Yang et al., 2019).

:class:`CondConv2D` computes, per example ``n``, routing weights
``r[n] = sigmoid(FC(GAP(x[n])))`` (one per expert, as in the CondConv paper)
and the convolution with the mixed kernel ``W_n = sum_e r[n, e] W_e``.
Convolution is linear in its kernel, so ``conv(x_n, W_n) = sum_e r[n, e]
conv(x_n, W_e)``: we run *one* convolution with the ``E`` experts stacked along
the output channels and mix the ``E`` outputs with ``r``. That hybridizes for
any batch size (the "N*C groups" trick, one grouped convolution over the batch
folded into channels, needs the batch size in the graph) and is exactly equal
(tested against per-example mixed kernels). Its cost is ``E`` convolutions
instead of one, and that is what :func:`hcnet.count` sees; an implementation
that mixes kernels first costs one convolution plus ``E * |W|`` multiply-adds
of kernel mixing per example. :func:`hcnet.paper.irnet_table4.irnet_layer_macs` reports both
(``macs`` as counted, ``macs_efficient`` for the kernel-mixing implementation;
the routing FC is in both).
"""
import mxnet as mx
from mxnet.gluon import nn

__all__ = ['CondConv2D']

NUM_EXPERTS = 4


class CondConv2D(nn.HybridBlock):
    """Conditionally parameterised convolution (Yang et al., CondConv, 2019).

    ``y[n] = conv(x[n], sum_e r[n, e] W_e)`` with routing weights
    ``r[n] = sigmoid(routing(mean_hw(x[n])))``, ``routing`` a Dense layer
    ``in_channels -> num_experts`` (with bias), computed from this layer's input.

    Implemented as one convolution whose ``num_experts * channels`` outputs are
    the experts' outputs, mixed per example with ``r`` (equal to the kernel
    mixture because convolution is linear in the kernel; see the module doc for
    the cost difference).

    Parameters
    ----------
    channels, kernel_size, strides, padding, groups, in_channels
        As :class:`mxnet.gluon.nn.Conv2D` (square kernels; ``in_channels`` is
        required; ``padding`` defaults to ``kernel_size // 2``).
    num_experts : int
        Number of expert kernels ``E``.
    use_bias : bool
        Per-expert biases, mixed like the kernels.

    Parameter layout: ``weight`` has shape ``(E * channels, in_channels / groups,
    k, k)``; output channel ``o`` of expert ``e`` in group ``j`` (``o`` counted
    within the group) is row ``(j * E + e) * channels / groups + o``. With one
    expert (or one group) this is the plain ``Conv2D`` layout;
    :meth:`expert_weights` / :meth:`set_expert_weights` convert to and from
    ``(E, channels, in_channels / groups, k, k)``.
    """

    def __init__(self, channels, kernel_size, strides=1, padding=None, groups=1, in_channels=0,
                 num_experts=NUM_EXPERTS, use_bias=False, weight_initializer=None,
                 bias_initializer='zeros', **kwargs):
        super().__init__(**kwargs)
        if in_channels <= 0:
            raise ValueError('CondConv2D needs in_channels (its routing layer is sized by it)')
        if channels % groups or in_channels % groups:
            raise ValueError('channels (%d) and in_channels (%d) must be multiples of groups (%d)'
                             % (channels, in_channels, groups))
        if num_experts < 1:
            raise ValueError('num_experts must be >= 1, got %r' % num_experts)
        self.channels, self.in_channels, self.groups = channels, in_channels, groups
        self.num_experts, self.kernel_size = num_experts, kernel_size
        pad = kernel_size // 2 if padding is None else padding
        self._conv_kwargs = dict(kernel=(kernel_size, kernel_size), stride=(strides, strides),
                                 pad=(pad, pad), num_filter=num_experts * channels,
                                 num_group=groups)
        with self.name_scope():
            self.weight = self.params.get(
                'weight', shape=(num_experts * channels, in_channels // groups,
                                 kernel_size, kernel_size), init=weight_initializer)
            if use_bias:
                self.bias = self.params.get('bias', shape=(num_experts * channels,),
                                            init=bias_initializer)
            else:
                self.bias = None
            self.routing = nn.Dense(num_experts, in_units=in_channels, prefix='routing_')

    def _routing(self, F, x):
        return F.sigmoid(self.routing(F.mean(x, axis=(2, 3))))

    def hybrid_forward(self, F, x, weight, bias=None):
        r = self._routing(F, x)                                   # (N, E)
        if bias is None:
            conv = F.Convolution(x, weight, name='fwd', no_bias=True, **self._conv_kwargs)
        else:
            conv = F.Convolution(x, weight, bias, name='fwd', **self._conv_kwargs)
        g, e, o = self.groups, self.num_experts, self.channels
        y = F.reshape(conv, shape=(0, g, e, o // g, -1))         # (N, g, E, O/g, H*W)
        y = F.sum(F.broadcast_mul(y, F.reshape(r, shape=(0, 1, e, 1, 1))), axis=2)
        y = F.reshape(y, shape=(0, o, -1))                        # (N, O, H*W)
        return F.reshape_like(y, conv, lhs_begin=2, lhs_end=3, rhs_begin=2, rhs_end=4)

    # -- helpers (imperative) ----------------------------------------------------------
    def routing_weights(self, x):
        """The routing weights ``r`` (N, E) for the NDArray batch ``x``."""
        return self._routing(mx.nd, x)

    def expert_weights(self):
        """The expert kernels as an NDArray ``(E, channels, in_channels / groups, k, k)``."""
        g, e, o = self.groups, self.num_experts, self.channels
        w = self.weight.data().reshape((g, e, o // g) + self.weight.shape[1:])
        return w.transpose((1, 0, 2, 3, 4, 5)).reshape((e, o) + self.weight.shape[1:])

    def set_expert_weights(self, experts):
        """Set the kernels from an array ``(E, channels, in_channels / groups, k, k)``."""
        g, e, o = self.groups, self.num_experts, self.channels
        w = mx.nd.array(experts).reshape((e, g, o // g) + self.weight.shape[1:])
        self.weight.set_data(w.transpose((1, 0, 2, 3, 4, 5)).reshape(self.weight.shape))

    def mixed_kernels(self, x):
        """Per-example kernels ``sum_e r[n, e] W_e``: NDArray ``(N, channels, C/g, k, k)``."""
        r = self.routing_weights(x)                               # (N, E)
        w = self.expert_weights()                                 # (E, O, C/g, k, k)
        mixed = mx.nd.dot(r, w.reshape((self.num_experts, -1)))  # (N, O * C/g * k * k)
        return mixed.reshape((-1,) + w.shape[1:])

    def madds(self, out_h, out_w, efficient=True):
        """Multiply-adds for one example with an ``out_h x out_w`` output.

        ``efficient=False``: this implementation (``E`` convolutions + routing FC),
        what :func:`hcnet.count` reports. ``efficient=True``: mixing the kernels
        first (``E * |W|``), one convolution, routing FC.
        """
        kernel = self.channels * self.in_channels // self.groups * self.kernel_size ** 2
        one_conv = out_h * out_w * kernel
        routing = self.in_channels * self.num_experts
        if efficient:
            return one_conv + self.num_experts * kernel + routing
        return self.num_experts * one_conv + routing
