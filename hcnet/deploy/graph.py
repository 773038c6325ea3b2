"""Inference-only networks: a rewritten graph that computes the same outputs faster.

    import hcnet
    from hcnet.deploy import optimize
    net = hcnet.get_model('hc_m5_i10', pretrained=True)
    fast = optimize(net, input_size=224)          # a hybridized gluon.SymbolBlock
    logits = fast(mx.nd.array(batch))             # == net(batch) up to float rounding

:func:`to_symbol` walks the Gluon network (stem, MBBlocks, IdleBlocks, ISBs, SE,
head, classifier) and emits a new MXNet symbol with constant weights. Every
rewrite is exact algebra; outputs differ from the Gluon network only by float
rounding (of the folded BatchNorms, and of summation order inside kernels):

``fold_bn``
    BatchNorm folded into the preceding convolution: ``W * s``,
    ``(b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)`` (float64, stored
    as float32).
``plain_concat``
    ``concat`` instead of :func:`hcnet.nn.blocks.concat_channels` (that works
    around a oneDNN bug of the *backward* pass; inference needs none).
``track_idle``
    The idle channels are not moved. Between blocks a tensor is a list of
    *segments*; an IdleBlock takes its active input from the segments and puts
    its output segment back where its side says, leaving the idle segment(s) as
    they are. Only a block that needs the whole tensor (an MBBlock, the head)
    concatenates, so a run of R-IdleBlocks splits once and concatenates once, and
    L/R alternation just alternates which of the two segments is active.
``split_producers``
    How the run splits: where the tensor being split is the output of a
    convolution (a reduction MBBlock's projection, possibly plus a residual that
    is itself splittable), the convolution is emitted as two convolutions, one
    per half -- no slice at all. Where that would waste too much padding
    (``split_ratio``, see ``align``) and the active branch has a residual, the
    block runs *masked* instead: its convolutions read / write the whole tensor
    with zero weights on the idle channels, the residual add passes them through
    (``0 + x2``); otherwise the halves are sliced.
``block_split``
    Where the run's producer can be split and the first IdleBlock's active branch
    has a residual, cut after the *block* holding the last active channel
    (``align`` channels a block) instead of after the last active channel: the
    producer then writes as many rows as unsplit (40 channels: 32 + 16, not
    32 + 32), and the few idle channels sharing that block ride through the active
    branch masked (zero weights in, zero rows out, carried by its residual). Only
    for runs that keep one side: under L/R alternation the halves stay apart.
``residual_split``
    How a producer with a residual add is split: ``'slice'`` slices its input's
    part for the add (one copy); ``'producer'`` splits the input's own producer
    too, which then runs twice (whole, for the expansion, and in parts);
    ``'concat'`` looks ahead: when the next block is an IdleBlock that will cut
    this block's output, the input's producer is emitted in the two parts of
    that cut once, the expansion reads their concatenation and the residual adds
    take the parts (no slice, nothing computed twice; in ONNX Runtime a slice is
    a ``Split`` its blocked layout lacks, which drags the following blocks'
    adds out of it).
``align``
    Channel counts padded to multiples of ``align`` with never-read channels:
    every tensor carries a map from logical to physical channels, every consumer
    convolution gets zero weights for the padding, every producer zero rows.
    With 16 (AVX-512's float block) the half-width tensors of IdleBlocks
    (12, 20, 40, 56 channels) become blocked-layout friendly, so ONNX Runtime's
    NCHWc kernels keep residual adds fused and concatenations copy-free.
    Without padding ONNX Runtime wraps every residual add of an IdleBlock in
    layout reorders; in MXNet oneDNN fuses fewer of them. 1 pads nothing.
``global_pool``
    ``Pooling(global_pool=True)`` (oneDNN) for the SE squeeze instead of
    ``AdaptiveAvgPooling2D(1)``. Dropout and drop-connect are removed
    (identities at inference).
``hswish_conv``
    h-swish as ``x * clip(dwconv1x1(x; 1/6, 1/2), 0, 1)``: with ``fuse`` oneDNN
    runs the ``relu6(x + 3) / 6`` part as a fused convolution, instead of MXNet's
    scalar ``hard_sigmoid`` kernel (this MXNet build's non-oneDNN kernels are
    compiled without AVX). Not for ONNX Runtime, which fuses h-swish itself.
``se_upsample``
    The SE gate (N, C, 1, 1) is nearest-upsampled to the feature map's size
    before the product (a same-shape product stays in ONNX Runtime's blocked
    layout; a broadcast one is wrapped in reorders). Needs ``input_size``; the
    ONNX file needs :func:`patch_onnx`. For ONNX Runtime only.

:func:`optimize` (``fuse=True``, the default) also runs MXNet's oneDNN subgraph pass
(``optimize_for(backend='MKLDNN')``: conv + activation + residual-add fusion).
Blocks of unknown types are emitted by calling them on the symbol (their
parameters copied as they are), so custom layers keep working, unoptimised.
:func:`export` writes the graph as symbol + params, for ``mx.onnx.export_model``.
"""
import json
import os
import warnings

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.gluon import nn

from ..nn.activations import HardSigmoid, HardSwish, Swish
from ..fileio import atomic_path
from ..nn.utils import walk_blocks
from ..nn.blocks import IdleBlock, MBBlock, SEModule, channel_shuffle, concat_channels

__all__ = ['optimize', 'to_symbol', 'check_options', 'export', 'patch_onnx', 'compare',
           'max_rel_diff',
           'DeployGraph', 'DEFAULTS', 'ORT_OPTIONS', 'ORIGINAL']

#: Default switches of :func:`to_symbol` / :func:`optimize`: the fastest MXNet path
#: measured (with ``optimize(fuse=True)``, its default).
DEFAULTS = dict(fold_bn=True, plain_concat=True, track_idle=True, split_producers=True,
                split_ratio=1.34, align=16, global_pool=True, se_upsample=False,
                hswish_conv=True, block_split=True,
                residual_split='slice')

#: The switches for ONNX Runtime (``scripts/benchmark_latency.py``'s onnxruntime-fast):
#: ONNX Runtime fuses h-swish into its convolutions itself, and keeps the SE scaling
#: in its blocked layout only as a same-shape product (``se_upsample``), and has no
#: blocked-layout Split (``residual_split='concat'``; MXNet runs 'slice' and 'concat'
#: alike: 1.220 vs 1.214 for hc_m10_i10 / hc_m15_i0 at 1 thread).
ORT_OPTIONS = dict(DEFAULTS, se_upsample=True, hswish_conv=False, residual_split='concat')

#: The original formulation (every switch off): bit-identical to the Gluon network.
ORIGINAL = dict(fold_bn=False, plain_concat=False, track_idle=False, split_producers=False,
                split_ratio=1.34, align=1, global_pool=False, se_upsample=False,
                hswish_conv=False, block_split=False,
                residual_split='producer')

# element-wise layers: applied to the physical tensor, padding stays padding
_ELEMENTWISE = (HardSigmoid, HardSwish, Swish, nn.Activation)
# per-channel layers: likewise
_PER_CHANNEL = (nn.GlobalAvgPool2D, nn.AvgPool2D, nn.MaxPool2D, nn.GlobalMaxPool2D)


def _roundup(n, align):
    return n if align <= 1 else -(-n // align) * align


class DeployGraph:
    """An emitted inference graph: ``symbol``, ``arg_params``, ``aux_params``, stats."""

    def __init__(self, symbol, arg_params, aux_params, options, stats):
        self.symbol = symbol
        self.arg_params = arg_params
        self.aux_params = aux_params
        self.options = options
        self.stats = stats

    def op_counts(self):
        """{operator name: count} of the emitted graph."""
        counts = {}
        for node in json.loads(self.symbol.tojson())['nodes']:
            if node['op'] != 'null':
                counts[node['op']] = counts.get(node['op'], 0) + 1
        return counts

    def conv_madds(self, input_size, pointwise=False):
        """Multiply-adds of the emitted convolutions and FC layers for one image,
        padding channels included: what the runtime computes, to set beside the
        network's own count (the difference is the price of ``align``).

        ``pointwise=True`` counts only the 1x1 convolutions on feature maps (not the
        SE layers' on 1x1 gates, not depthwise ones, not FC layers): the work an
        IdleBlock halves."""
        size = (input_size, input_size) if isinstance(input_size, int) else input_size
        data = (1, 3) + tuple(size)
        internals = self.symbol.get_internals()
        _, out_shapes, _ = internals.infer_shape(data=data)
        out_shape = dict(zip(internals.list_outputs(), out_shapes))
        arg_shapes, _, _ = self.symbol.infer_shape(data=data)
        arg_shape = dict(zip(self.symbol.list_arguments(), arg_shapes))
        nodes = json.loads(self.symbol.tojson())['nodes']
        total = 0
        for node in nodes:
            if node['op'] in ('Convolution', 'FullyConnected'):
                weight = arg_shape[nodes[node['inputs'][1][0]]['name']]
                out = out_shape[node['name'] + '_output']
                if pointwise and not (
                        node['op'] == 'Convolution' and tuple(weight[2:]) == (1, 1)
                        and int(node['attrs'].get('num_group', 1)) == 1
                        and int(np.prod(out[2:])) > 1):
                    continue
                total += int(np.prod(out)) * int(np.prod(weight[1:]))
        return total


class _T:
    """A physical NCHW tensor ``sym`` of ``phys`` channels holding logical channel
    ``c`` at physical channel ``pos[c]``; the other physical channels are padding
    (finite values no consumer reads). ``split(lo, hi, pos=None, phys=None)``, when
    set, re-emits the producer for logical channels [lo, hi) only."""
    __slots__ = ('sym', 'pos', 'phys', 'split')

    def __init__(self, sym, pos, phys, split=None):
        self.sym = sym
        self.pos = np.asarray(pos, dtype=np.int64)
        self.phys = int(phys)
        self.split = split

    @property
    def channels(self):
        return len(self.pos)

    def is_compact(self):
        return self.phys == len(self.pos) and bool((self.pos == np.arange(self.phys)).all())

    def view(self, lo, hi):
        return _T(self.sym, self.pos[lo:hi], self.phys)


def _bn_param(bn, suffix):
    for name, p in bn.params.items():
        if name.endswith(suffix):
            return p.data().asnumpy().astype(np.float64)
    raise KeyError('%s has no parameter *%s' % (bn.name, suffix))


def _is_bn(block):
    if isinstance(block, nn.BatchNorm):
        return True
    names = list(getattr(block, 'params', {}).keys())
    kwargs = getattr(block, '_kwargs', None) or {}
    return (all(any(n.endswith(s) for n in names)
                for s in ('gamma', 'beta', 'running_mean', 'running_var'))
            and 'eps' in kwargs and kwargs.get('axis', 1) == 1)


def _bn_affine(bn):
    """(scale, shift) of an inference-mode BatchNorm, float64."""
    kw = bn._kwargs
    gamma = _bn_param(bn, 'gamma')
    if kw.get('fix_gamma', False):
        gamma = np.ones_like(gamma)
    scale = gamma / np.sqrt(_bn_param(bn, 'running_var') + float(kw.get('eps', 1e-5)))
    return scale, _bn_param(bn, 'beta') - _bn_param(bn, 'running_mean') * scale


def _has_conv(block):
    if isinstance(block, nn.Conv2D):
        return True
    if isinstance(block, (nn.HybridSequential, nn.Sequential)):
        return any(_has_conv(c) for c in block._children.values())
    return False


def _conv_weights(conv, bn=None):
    w = conv.weight.data().asnumpy().astype(np.float64)
    b = (conv.bias.data().asnumpy().astype(np.float64) if conv.bias is not None
         else np.zeros(w.shape[0]))
    if bn is not None:
        scale, shift = _bn_affine(bn)
        w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        b = b * scale + shift
    return w, b


class _Emitter:
    def __init__(self, options, root='', input_size=None):
        self.o = options
        self.input_size = input_size
        self.align = max(1, int(options['align']))
        self.root = root
        self.where = ''     # prefix of the block being emitted (names slices / concats)
        self.params = {}
        self.counter = {}
        self.mixed_runs = set()     # ids of IdleBlocks in runs that alternate sides
        self.next_block = {}        # id(MBBlock / IdleBlock) -> the block after it
        self.stats = {'folded_bn': 0, 'unfolded_bn': 0, 'concat': 0, 'slice': 0,
                      'split_convs': 0, 'masked_blocks': 0, 'idle_blocks': 0,
                      'mb_blocks': 0, 'fallback': []}

    # ---------------------------------------------------------------- helpers
    def _name(self, base):
        if self.root and base.startswith(self.root):
            base = base[len(self.root):]
        base = base.rstrip('_') or 'op'
        n = self.counter.get(base, 0)
        self.counter[base] = n + 1
        return base if n == 0 else '%s%d' % (base, n)

    def _const(self, name, value):
        name = self._name(name)
        self.params[name] = mx.nd.array(np.asarray(value, dtype=np.float32))
        return mx.sym.var(name)

    def _concat(self, syms):
        self.stats['concat'] += 1
        if self.o['plain_concat']:
            return mx.sym.concat(*syms, dim=1, name=self._name(self.where + 'concat'))
        out = syms[0]
        for s in syms[1:]:
            out = concat_channels(mx.sym, out, s)
        return out

    def _slice(self, sym, begin, end):
        self.stats['slice'] += 1
        return mx.sym.slice_axis(sym, axis=1, begin=int(begin), end=int(end),
                                 name=self._name(self.where + 'slice'))

    def _join(self, x):
        """One :class:`_T` for a tensor or a list of segments (concat only if needed)."""
        if isinstance(x, _T):
            return x
        if len(x) == 1:
            return x[0]
        syms, offsets, phys = [], {}, 0
        for seg in x:
            key = id(seg.sym)
            if key not in offsets:
                offsets[key] = phys
                syms.append(seg.sym)
                phys += seg.phys
        pos = np.concatenate([seg.pos + offsets[id(seg.sym)] for seg in x])
        sym = syms[0] if len(syms) == 1 else self._concat(syms)
        return _T(sym, pos, phys)

    def _compact(self, x):
        """The tensor without padding, logical channel order (for foreign layers)."""
        t = self._join(x)
        if t.is_compact():
            return t
        runs, start = [], 0
        for i in range(1, t.channels + 1):
            if i == t.channels or t.pos[i] != t.pos[i - 1] + 1:
                runs.append((t.pos[start], t.pos[i - 1] + 1))
                start = i
        if len(runs) == 1 and runs[0] == (0, t.phys):
            return _T(t.sym, np.arange(t.channels), t.channels)
        parts = [self._slice(t.sym, a, b) for a, b in runs]
        sym = parts[0] if len(parts) == 1 else self._concat(parts)
        return _T(sym, np.arange(t.channels), t.channels)

    def _phys_slice(self, t, lo, hi):
        p = t.pos[lo:hi]
        a, b = int(p.min()), int(p.max()) + 1
        if a == 0 and b == t.phys:
            return t.view(lo, hi)
        return _T(self._slice(t.sym, a, b), p - a, b - a)

    def _new_layout(self, channels):
        return np.arange(channels), _roundup(channels, self.align)

    # ---------------------------------------------------------------- layers
    def conv(self, conv, x, bn=None, act=None, out_pos=None, out_phys=None):
        """Conv2D (+ BatchNorm, folded or not, + element-wise ``act``) on tensor ``x``."""
        fold = bn is not None and self.o['fold_bn']
        w, b = _conv_weights(conv, bn if fold else None)
        x = self._join(x)
        if bn is not None and not fold:
            out = self._conv(x, w, b, conv._kwargs, conv.prefix, None, out_pos, out_phys,
                             splittable=False)
            out = self.batchnorm(bn, out)
            if act is not None:
                out = _T(act(out.sym, out.phys), out.pos, out.phys)
        else:
            if fold:
                self.stats['folded_bn'] += 1
            out = self._conv(x, w, b, conv._kwargs, conv.prefix, act, out_pos, out_phys)
        return self._conv_act(conv, out)

    def _conv_act(self, conv, out):
        if getattr(conv, 'act', None) is not None:
            out = self.block(conv.act, out)
        return out

    def _conv(self, x, w, b, kw, prefix, act=None, out_pos=None, out_phys=None,
              splittable=True):
        """Emit a convolution of logical weights ``w`` (O, I/g, k, k) on ``x``."""
        if kw.get('layout', 'NCHW') != 'NCHW':
            raise NotImplementedError('layout %s' % kw.get('layout'))
        groups = int(kw['num_group'])
        cin, cout = x.channels, w.shape[0]
        if groups == 1:
            if out_pos is None:
                out_pos, out_phys = self._new_layout(cout)
            wp = np.zeros((out_phys, x.phys) + w.shape[2:])
            wp[np.ix_(out_pos, x.pos)] = w
            bp = np.zeros(out_phys)
            bp[out_pos] = b
            groups_p = 1
        elif groups == cin == cout and w.shape[1] == 1:     # depthwise: layout kept
            if out_pos is not None and not (np.array_equal(out_pos, x.pos)
                                            and out_phys == x.phys):
                raise ValueError('a depthwise convolution keeps its layout')
            out_pos, out_phys = x.pos, x.phys
            wp = np.zeros((x.phys, 1) + w.shape[2:])
            wp[x.pos] = w
            bp = np.zeros(x.phys)
            bp[x.pos] = b
            groups_p = x.phys
        else:                                               # other grouped convs: compact
            x = self._compact(x)
            wp, bp, groups_p = w, b, groups
            if out_pos is not None and not (out_phys == cout
                                            and np.array_equal(out_pos, np.arange(cout))):
                raise ValueError('grouped convolutions write compact outputs')
            out_pos, out_phys = np.arange(cout), cout
        sym = mx.sym.Convolution(
            x.sym, self._const(prefix + 'weight', wp), self._const(prefix + 'bias', bp),
            kernel=kw['kernel'], stride=kw['stride'], dilate=kw['dilate'], pad=kw['pad'],
            num_filter=int(wp.shape[0]), num_group=int(groups_p), no_bias=False,
            name=self._name(prefix + 'conv'))
        if act is not None:
            sym = act(sym, int(out_phys))
        split = None
        if splittable and groups == 1 and self.o['split_producers']:
            def split(lo, hi, pos=None, phys=None):
                self.stats['split_convs'] += 1
                return self._conv(x, w[lo:hi], b[lo:hi], kw, prefix, act, pos, phys)
        return _T(sym, out_pos, out_phys, split)

    def batchnorm(self, bn, x):
        """An unfolded BatchNorm: MXNet's (oneDNN) BatchNorm op with global statistics."""
        t = self._join(x)
        kw = bn._kwargs
        self.stats['unfolded_bn'] += 1
        gamma = _bn_param(bn, 'gamma')
        if kw.get('fix_gamma', False):
            gamma = np.ones_like(gamma)
        vals = {'gamma': (gamma, 1.0), 'beta': (_bn_param(bn, 'beta'), 0.0),
                'running_mean': (_bn_param(bn, 'running_mean'), 0.0),
                'running_var': (_bn_param(bn, 'running_var'), 1.0)}
        consts = {}
        for key, (value, fill) in vals.items():
            full = np.full(t.phys, fill)
            full[t.pos] = value
            consts[key] = self._const(bn.prefix + key, full)
        sym = mx.sym.BatchNorm(t.sym, consts['gamma'], consts['beta'], consts['running_mean'],
                               consts['running_var'], eps=float(kw.get('eps', 1e-5)),
                               fix_gamma=False, use_global_stats=True, axis=1,
                               name=self._name(bn.prefix + 'bn'))
        return _T(sym, t.pos, t.phys)

    def _act_fn(self, blk):
        """Element-wise layer ``blk`` as a function of (symbol, physical channels)."""
        if isinstance(blk, nn.Activation):
            name = self._name(blk.prefix + blk._act_type)
            return lambda s, phys: mx.sym.Activation(s, act_type=blk._act_type, name=name)
        prefix = self._name(blk.prefix)
        if isinstance(blk, HardSwish) and self.o['hswish_conv']:
            def hswish(s, phys):
                # relu6(x + 3) / 6 as a 1x1 depthwise conv (x / 6 + 1/2) + clip(0, 1):
                # oneDNN fuses the clip into the conv; MXNet's hard_sigmoid is slow
                w = self._const(prefix + '_hsig_weight', np.full((phys, 1, 1, 1), 1.0 / 6))
                b = self._const(prefix + '_hsig_bias', np.full(phys, 0.5))
                g = mx.sym.Convolution(s, w, b, kernel=(1, 1), num_filter=phys,
                                       num_group=phys, no_bias=False,
                                       name=self._name(prefix + '_hsig'))
                g = mx.sym.clip(g, 0.0, 1.0, name=self._name(prefix + '_clip'))
                return mx.sym.elemwise_mul(s, g, name=self._name(prefix + '_mul'))
            return hswish

        def apply(s, phys):
            with mx.name.Prefix(prefix + '_'):
                return blk.hybrid_forward(mx.sym, s)
        return apply

    def sequential(self, seq, x, out_pos=None, out_phys=None):
        """Children in order; Conv2D [+ BatchNorm] [+ element-wise] are emitted together.

        ``out_pos``/``out_phys`` give the layout of the *last* convolution's output.
        """
        children = list(seq._children.values())
        last_conv = max([i for i, c in enumerate(children) if _has_conv(c)], default=-1)
        i = 0
        while i < len(children):
            child = children[i]
            if isinstance(child, nn.Conv2D):
                j = i + 1
                bn = act = None
                if j < len(children) and _is_bn(children[j]):
                    bn, j = children[j], j + 1
                if j < len(children) and isinstance(children[j], _ELEMENTWISE):
                    act, j = self._act_fn(children[j]), j + 1
                layout = (out_pos, out_phys) if i == last_conv else (None, None)
                x = self.conv(child, x, bn=bn, act=act, out_pos=layout[0],
                              out_phys=layout[1])
                i = j
                continue
            if i == last_conv and out_pos is not None:
                if not isinstance(child, (nn.HybridSequential, nn.Sequential)):
                    raise NotImplementedError('output layout through %s' % type(child))
                x = self.sequential(child, x, out_pos, out_phys)
            else:
                x = self.block(child, x)
            i += 1
        return x

    def se(self, se, x):
        t = self._join(x)
        if self.o['global_pool']:
            w = mx.sym.Pooling(t.sym, kernel=(1, 1), global_pool=True, pool_type='avg',
                               name=self._name(se.prefix + 'pool'))
        else:
            w = mx.sym.contrib.AdaptiveAvgPooling2D(t.sym, output_size=1)
        w = self.conv(se.reduce, _T(w, t.pos, t.phys), act=self._act_fn(se.act))
        w = self.conv(se.expand, w, act=self._act_fn(se.gate), out_pos=t.pos,
                      out_phys=t.phys)
        gate = w.sym
        if self.o['se_upsample']:
            if not self.input_size:
                raise ValueError('se_upsample needs the input size')
            _, shapes, _ = t.sym.infer_shape(data=(1, 3) + self.input_size)
            h, w_ = shapes[0][2:]
            if h == w_ and h > 1:
                gate = mx.sym.UpSampling(gate, scale=int(h), sample_type='nearest',
                                         num_args=1, name=self._name(se.prefix + 'upsample'))
        return _T(mx.sym.broadcast_mul(t.sym, gate, name=self._name(se.prefix + 'scale')),
                  t.pos, t.phys)

    def mbblock(self, blk, x):
        self.stats['mb_blocks'] += 1
        self.where = blk.prefix
        x = self._join(x)
        if not blk.use_residual:
            return self.sequential(blk.body, x)
        # the projection writes in the input's layout, so the residual add is plain
        parts = {}      # x's producer emitted in parts (residual_split 'concat')
        if self.o['residual_split'] == 'concat' and x.split is not None:
            x, parts = self._presplit(x, self._next_cut(blk, x.channels))
        out = self.sequential(blk.body, x, out_pos=x.pos, out_phys=x.phys)
        sym = mx.sym.elemwise_add(out.sym, x.sym, name=self._name(blk.prefix + 'add'))
        split = None
        slice_input = self.o['residual_split'] in ('slice', 'concat')
        if out.split is not None and (x.split is not None or slice_input):
            proj, inp = out.split, x.split

            def split(lo, hi, pos=None, phys=None):
                if slice_input and pos is None:
                    # the expansion reads all of x anyway: slice the residual's part of
                    # it rather than computing x's producer a second time, in parts
                    # (unless x was emitted in exactly these parts)
                    xs = parts.get((lo, hi)) or self._phys_slice(x, lo, hi)
                else:
                    xs = inp(lo, hi, pos, phys)
                ys = proj(lo, hi, xs.pos, xs.phys)
                return _T(mx.sym.elemwise_add(ys.sym, xs.sym), xs.pos, xs.phys)
        return _T(sym, x.pos, x.phys, split)

    def _cut_point(self, c, k, splittable, masked_ok, block_ok):
        """How a ``c``-channel segment is cut after logical channel ``k``:
        ``('block', kb)`` -- its producer split at the block boundary ``kb`` after
        channel ``k`` (``block_split``), ``('split', k)`` -- split at ``k``, or
        ``(None, k)`` -- not split (masked or sliced)."""
        kb = _roundup(k, self.align)
        if (splittable and masked_ok and block_ok and self.o['block_split']
                and kb != k and kb < c):
            return 'block', kb
        if splittable:
            whole = _roundup(c, self.align)
            if _roundup(k, self.align) + _roundup(c - k, self.align) <= \
                    self.o['split_ratio'] * whole:
                return 'split', k
        return None, k

    def _next_cut(self, blk, c):
        """Where the block after ``blk`` will split its producer, ``blk``'s ``c``-channel
        output (:meth:`_cut`'s rule), or None if it will not."""
        nxt = self.next_block.get(id(blk))
        if not isinstance(nxt, IdleBlock) or not self.o['track_idle'] or nxt.shuffle:
            return None
        k = nxt.active_channels
        if not 0 < k < c:
            return None
        how, q = self._cut_point(c, k, True, nxt.active.use_residual,
                                 id(nxt) not in self.mixed_runs)
        return q if how else None

    def _presplit(self, x, q):
        """(``x`` re-emitted as the concatenation of its producer's parts [0, q) and
        [q, c), {range: part}); its ``split`` hands those parts out as they are
        (``residual_split='concat'``). (``x``, {}) when ``q`` is None."""
        if q is None:
            return x, {}
        c = x.channels
        first, second = x.split(0, q), x.split(q, c)
        sym = self._concat([first.sym, second.sym])
        pos = np.concatenate([first.pos, second.pos + first.phys])
        parts = {(0, q): first, (q, c): second}
        producer = x.split

        def split(lo, hi, pos=None, phys=None):
            part = parts.get((lo, hi))
            if part is not None and (pos is None or (
                    np.array_equal(pos, part.pos) and phys == part.phys)):
                return part
            return producer(lo, hi, pos, phys)
        return _T(sym, pos, first.phys + second.phys, split), parts

    def _cut(self, seg, k, masked_ok, block_ok=True):
        """Cut segment ``seg`` after logical channel ``k``: (first, seconds).

        ``first`` holds the active channels, ``seconds`` is a list of idle segments.
        """
        c = seg.channels
        how, q = self._cut_point(c, k, seg.split is not None, masked_ok, block_ok)
        if how == 'block':
            # cut at the block boundary after channel k: the producer writes as many
            # rows as unsplit; the q - k idle channels in the first part are
            # carried through the (masked) active branch by its residual
            head, tail = seg.split(0, q), seg.split(q, c)
            return head.view(0, k), [head.view(k, q), tail]
        if how == 'split':
            return seg.split(0, k), [seg.split(k, c)]  # two convolutions
        if masked_ok:
            return seg.view(0, k), [seg.view(k, c)]      # masked: both read in place
        return self._phys_slice(seg, 0, k), [self._phys_slice(seg, k, c)]

    def idleblock(self, blk, x):
        self.stats['idle_blocks'] += 1
        self.where = blk.prefix
        segs = [x] if isinstance(x, _T) else list(x)
        a = blk.active_channels
        if not self.o['track_idle']:        # the original: slice, transform, concat
            t = self._compact(segs)
            segs = [self._phys_slice(t, 0, a), self._phys_slice(t, a, t.channels)]
        active, idle, pos = [], [], 0
        for seg in segs:
            lo, hi = pos, pos + seg.channels
            if hi <= a:
                active.append(seg)
            elif lo >= a:
                idle.append(seg)
            else:
                masked_ok = lo == 0 and blk.active.use_residual
                first, seconds = self._cut(seg, a - lo, masked_ok,
                                              block_ok=id(blk) not in self.mixed_runs)
                active.append(first)
                idle.extend(seconds)
            pos = hi
        y1 = self.mbblock(blk.active, active)
        self.where = blk.prefix
        old = active[0].sym
        if (blk.active.use_residual and len(active) == 1
                and any(s.sym is old for s in idle)):
            # masked: the active branch read a tensor that also holds idle channels
            # and wrote zero rows there, so its residual add carries them (0 + x2)
            self.stats['masked_blocks'] += 1
            idle = [_T(y1.sym, s.pos, s.phys) if s.sym is old else s for s in idle]
            y1 = _T(y1.sym, y1.pos, y1.phys)
        if blk.pool is not None:
            t = self._join(idle)
            idle = [_T(blk.pool.hybrid_forward(mx.sym, t.sym), t.pos, t.phys)]
        out = idle + [y1] if blk.side == 'L' else [y1] + idle
        if blk.shuffle:
            t = self._compact(out)
            return _T(channel_shuffle(mx.sym, t.sym, 2, blk.out_channels),
                      np.arange(blk.out_channels), blk.out_channels)
        if not self.o['track_idle']:
            return self._compact(out)
        return out

    def dense(self, fc, x):
        t = self._compact(x)
        w = fc.weight.data().asnumpy()
        b = fc.bias.data().asnumpy() if fc.bias is not None else np.zeros(w.shape[0])
        sym = mx.sym.FullyConnected(t.sym, self._const(fc.prefix + 'weight', w),
                                    self._const(fc.prefix + 'bias', b),
                                    num_hidden=fc._units, flatten=fc._flatten, no_bias=False,
                                    name=self._name(fc.prefix + 'fc'))
        out = _T(sym, np.arange(w.shape[0]), w.shape[0])
        if getattr(fc, 'act', None) is not None:
            out = self.block(fc.act, out)
        return out

    def block(self, blk, x):
        if isinstance(blk, IdleBlock):
            return self.idleblock(blk, x)
        if isinstance(blk, MBBlock):
            return self.mbblock(blk, x)
        if isinstance(blk, SEModule):
            return self.se(blk, x)
        if isinstance(blk, (nn.HybridSequential, nn.Sequential)):
            return self.sequential(blk, x)
        if isinstance(blk, nn.Conv2D):
            return self.conv(blk, x)
        if isinstance(blk, nn.Dense):
            return self.dense(blk, x)
        if isinstance(blk, nn.Dropout):
            return x
        if _is_bn(blk):
            return self.batchnorm(blk, x)
        if isinstance(blk, _ELEMENTWISE + _PER_CHANNEL):
            t = self._join(x)
            fn = self._act_fn(blk)
            return _T(fn(t.sym, t.phys), t.pos, t.phys)
        if hasattr(blk, 'features') and hasattr(blk, 'output') and not blk.params.keys():
            return self.block(blk.output, self.block(blk.features, x))
        t = self._compact(x)
        if not blk._children and not blk.params.keys() and isinstance(blk, nn.HybridBlock):
            fn = self._act_fn(blk)              # parameter-free layer, e.g. Flatten
            return _T(fn(t.sym, t.phys), np.arange(t.channels), t.channels)
        return self.fallback(blk, t)

    def fallback(self, blk, t):
        """Unknown block: call it on the symbol; its parameters are copied as they are.

        Its output is assumed compact; the channel count is only needed if a known
        layer follows it, and is read from the block's ``out_channels`` /
        ``channels`` attribute when it has one.
        """
        self.stats['fallback'].append(type(blk).__name__)
        out = blk(t.sym)
        for p in blk.collect_params().values():
            self.params[p.name] = p.data().copy()
        c = getattr(blk, 'out_channels', None) or getattr(blk, '_channels', None) or 0
        return _T(out, np.arange(c), c)


def _block_order(net):
    """MBBlocks, IdleBlocks and leaf layers of ``net`` in execution order."""
    def unit(block):
        return isinstance(block, (IdleBlock, MBBlock))
    return [b for b in walk_blocks(net, stop=unit) if unit(b) or not b._children]


def _mixed_side_runs(order):
    """ids of the IdleBlocks in runs of consecutive IdleBlocks with both sides
    (``order``: :func:`_block_order`).

    A cut at a block boundary (``block_split``) suits a run whose active channels
    stay the same; under L/R alternation the active half moves, and the halves
    must be separate segments.
    """
    mixed, run = set(), []
    for block in order + [None]:
        if isinstance(block, IdleBlock) and not block.shuffle:
            run.append(block)
            continue
        if len({b.side for b in run}) > 1:
            mixed.update(id(b) for b in run)
        run = []
    return mixed


def check_options(options):
    """``options`` of :func:`to_symbol` completed from :data:`DEFAULTS`; TypeError for
    an unknown name, ValueError for a bad ``residual_split``."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError('unknown options %s' % ', '.join(sorted(unknown)))
    opts = dict(DEFAULTS, **options)
    if opts['residual_split'] not in ('slice', 'producer', 'concat'):
        raise ValueError("residual_split must be 'slice', 'producer' or 'concat', got %r"
                         % (opts['residual_split'],))
    return opts


def to_symbol(net, input_size=None, **options):
    """Emit the inference graph of ``net``: a :class:`DeployGraph`.

    Options (default :data:`DEFAULTS`; see the module docstring): ``fold_bn``,
    ``plain_concat``, ``track_idle``, ``split_producers``, ``split_ratio``,
    ``align``, ``global_pool`` -- ``False`` / 1 keeps the original formulation,
    to measure what each one buys.
    """
    opts = check_options(options)
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    em = _Emitter(opts, root=getattr(net, 'prefix', ''),
                  input_size=tuple(input_size) if input_size else None)
    order = _block_order(net)
    em.mixed_runs = _mixed_side_runs(order)
    em.next_block = {id(a): b for a, b in zip(order, order[1:])}
    data = _T(mx.sym.var('data'), np.arange(3), 3)
    out = em._compact(em.block(net, data)).sym
    args = set(out.list_arguments())
    auxs = set(out.list_auxiliary_states())
    arg_params = {k: v for k, v in em.params.items() if k in args}
    aux_params = {k: v for k, v in em.params.items() if k in auxs}
    missing = (args - {'data'} - set(arg_params)) | (auxs - set(aux_params))
    if missing:
        raise RuntimeError('deploy graph has unbound inputs: %s' % sorted(missing))
    return DeployGraph(out, arg_params, aux_params, opts, em.stats)


def _symbol_block(graph, ctx):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        block = gluon.SymbolBlock(graph.symbol, mx.sym.var('data'))
    params = block.collect_params()
    for name, value in list(graph.arg_params.items()) + list(graph.aux_params.items()):
        params[name]._load_init(value, ctx)
        params[name].grad_req = 'null'
    return block


def optimize(net, input_size=224, ctx=None, fuse=True, hybridize=True, **options):
    """An inference-only copy of ``net``: a hybridized (static alloc) ``gluon.SymbolBlock``.

    Its outputs equal ``net``'s in inference mode up to float rounding. ``fuse=True``
    also runs MXNet's oneDNN subgraph fusion for a (1, 3, input_size, input_size)
    input (CPU only); ``options`` are those of :func:`to_symbol` (``hswish_conv``
    defaults to whether fusion runs). The result carries
    ``deploy_graph`` (symbol, params, stats), ``input_size`` and ``fused``.
    """
    ctx = ctx or mx.cpu()
    fuse = fuse and ctx.device_type == 'cpu'         # oneDNN fusion is CPU-only
    options.setdefault('hswish_conv', fuse)          # pays only with the fused clip
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    graph = to_symbol(net, size, **options)
    block = _symbol_block(graph, ctx)
    if fuse:
        x = mx.nd.zeros((1, 3) + size, ctx=ctx)
        block.optimize_for(x, backend='MKLDNN', static_alloc=True, static_shape=True)
    elif hybridize:
        block.hybridize(static_alloc=True, static_shape=True)
    block.deploy_graph = graph
    block.input_size = size
    block.fused = bool(fuse)
    return block


def export(net, prefix, input_size=None, **options):
    """Write the inference graph of ``net`` as ``PREFIX-symbol.json`` + ``PREFIX-0000.params``.

    They load with ``gluon.SymbolBlock.imports`` and convert with
    ``mx.onnx.export_model`` (see :mod:`hcnet.deploy.onnx`); returns the two paths.
    """
    graph = to_symbol(net, input_size, **options)
    sym_file, params_file = prefix + '-symbol.json', prefix + '-0000.params'
    save = {'arg:' + k: v for k, v in graph.arg_params.items()}
    save.update({'aux:' + k: v for k, v in graph.aux_params.items()})
    with atomic_path(sym_file) as sym_tmp, atomic_path(params_file) as params_tmp:
        graph.symbol.save(sym_tmp)
        mx.nd.save(params_tmp, save)
    return sym_file, params_file


def patch_onnx(model):
    """Make the SE gate upsampling of ``se_upsample`` ONNX Runtime NCHWc-friendly.

    MXNet exports ``UpSampling`` as ``Resize(coordinate_transformation_mode=
    'half_pixel')``; for a 1x1 source every mode gives the same copy, and ONNX
    Runtime runs only ``asymmetric`` / ``floor`` nearest resizes in its blocked
    layout. Patches every nearest ``Resize`` (in a deploy graph only the SE gates
    are resized). Returns the number of nodes changed.
    """
    from onnx import helper
    changed = 0
    for node in model.graph.node:
        modes = {a.name: a.s for a in node.attribute}
        if node.op_type == 'Resize' and modes.get('mode') == b'nearest':
            keep = [a for a in node.attribute
                    if a.name not in ('coordinate_transformation_mode', 'nearest_mode')]
            del node.attribute[:]
            node.attribute.extend(keep + [
                helper.make_attribute('coordinate_transformation_mode', 'asymmetric'),
                helper.make_attribute('nearest_mode', 'floor')])
            changed += 1
    return changed


def max_rel_diff(got, ref):
    """The one "max relative difference" of hcnet's checks:
    ``max |got - ref| / max(1, max |ref|)`` (absolute for outputs below 1 in magnitude)."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.abs(got - ref).max() / max(1.0, float(np.abs(ref).max())))


def compare(net, fast, x):
    """:func:`max_rel_diff` of ``fast(x)`` against ``net(x)`` (both in inference mode)."""
    return max_rel_diff(fast(x).asnumpy(), net(x).asnumpy())
