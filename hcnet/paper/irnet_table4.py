"""IR-Net's Table 4 (``ir-net.txt``): the paper's rows, and ours measured on the built networks."""
from dataclasses import dataclass
from typing import Optional, Tuple

import mxnet as mx

from ..complexity import BLOCK_RE, count
from ..nn import CondConv2D, walk_blocks
from ..models.irnet import IRNet, HEAD_CHANNELS, IRNET_KINDS, IRNET_TABLE1, STEM_CHANNELS

__all__ = ['PaperLayer', 'PAPER_TABLE4', 'PAPER_TABLE4_TOTAL', 'PAPER_TABLE4_NOTES',
           'FILTER_CX_NOTE', 'IRNetLayer', 'irnet_layer_macs', 'render_irnet_table']



@dataclass(frozen=True)
class PaperLayer:
    """One row of the paper's Table 4."""
    operation: str
    rep: int
    macs: int
    filter_cx: int


_BLOCK = 'Block (Ne=4Ni, F=3, S=%d, ID=%s)'

#: ir-net.txt, Table 4: per-operation MACs and filter coefficients of network [A].
PAPER_TABLE4 = (
    PaperLayer('Conv (3x3/1), Batch Norm, ReLU', 1, 1354752, 432),
    PaperLayer(_BLOCK % (1, True), 1, 8228864, 38912),
    PaperLayer(_BLOCK % (1, False), 1, 9834496, 39424),
    PaperLayer(_BLOCK % (1, True), 1, 17160192, 87552),
    PaperLayer(_BLOCK % (2, False), 1, 5494272, 89088),
    PaperLayer(_BLOCK % (1, True), 2, 22328320, 486400),
    PaperLayer(_BLOCK % (2, False), 1, 7808640, 249600),
    PaperLayer(_BLOCK % (1, True), 3, 31799040, 2918400),
    PaperLayer(_BLOCK % (2, False), 1, 7667520, 998400),
    PaperLayer(_BLOCK % (1, True), 4, 41269760, 15564800),
    PaperLayer(_BLOCK % (1, False), 1, 15335040, 3993600),
    PaperLayer('Conv (1x1/1), Batch Norm, ReLU', 1, 20070400, 409600),
    PaperLayer('Global Avg Pool, Linear, Bias', 1, 128000, 0),
)
#: The paper's "Total" row: (MACs, filter coefficients).
PAPER_TABLE4_TOTAL = (193898304, 24876208)

#: Why a row of ours differs from the paper (row index -> explanation). Rows not
#: listed match the MAC column exactly.
PAPER_TABLE4_NOTES = {
    4: ('Paper 5,494,272 = 28*28 x (24*96 + 96*9 + 96*40): all three convolutions '
        'counted at the 28x28 output, as if the stride were in the 1x1 expansion. Ours '
        'counts the expansion at its 56x56 input (3,136 x 2,304 = 7,225,344 instead of '
        '1,806,336; +5,419,008), as the paper itself does in its other two stride-2 '
        'rows (7,808,640 and 7,667,520 are reproduced only that way) and in its Total: '
        'the paper\'s rows add up to 188,479,296, exactly 5,419,008 less than its Total '
        '193,898,304, which our rows reproduce. The cell is a slip in the paper.'),
}

#: What the paper's "Filter Cx" column counts (see :func:`render_irnet_table`).
FILTER_CX_NOTE = (
    'The "Filter Cx" column does not count our network\'s weights. It is reproduced '
    'exactly, row by row and in total, by counting every block\'s 3x3 depthwise '
    'convolution as a dense Ne -> Ne 3x3 convolution (9 Ne^2 coefficients instead of '
    '9 Ne; e.g. the first block: 16*64 + 9*64*64 + 64*16 = 38,912), the stem and head '
    'as dense convolutions, and 0 for the classifier (its 1280 x 100 = 128,000 weights '
    'are left out although its MACs are counted). The MAC column, by contrast, counts '
    'the depthwise convolution as depthwise (9 Ne per output pixel). Our column counts '
    'the actual convolution and linear weights (no BatchNorm, no biases).')


@dataclass
class IRNetLayer:
    """One row of our Table 4 for one network (see :func:`irnet_layer_macs`)."""
    operation: str
    rep: int
    units: Tuple[str, ...]          # 'stem', 'stage3_block1', ..., 'head', 'classifier'
    macs: int                       # conv + FC multiply-adds as hcnet.count measures them
    params: int                     # trainable parameters (BatchNorm gamma/beta included)
    filter_cx: int                  # conv + FC weights (no BatchNorm, no biases)
    filter_cx_paper_rule: int       # the paper's rule: depthwise as dense, classifier 0
    macs_efficient: Optional[int] = None   # block C: CondConv with kernel mixing
    paper: Optional[PaperLayer] = None
    note: str = ''


def _rows(net):
    """(operation, rep, units, paper-rule filter coefficients) of Table 4 for ``net``."""
    rows = [('Conv (3x3/%d), Batch Norm, ReLU' % net.stem_stride, 1, ('stem',),
             9 * 3 * STEM_CHANNELS)]
    plan = {unit: (cin, exp, cout, st) for unit, cin, exp, cout, st in net.block_plan}
    for s, (width, out, repeats, stride) in enumerate(IRNET_TABLE1, 1):
        for units, st, ident in ((tuple('stage%d_block%d' % (s, b) for b in range(1, repeats + 1)),
                                  1, True),
                                 (('stage%d_block%d' % (s, repeats + 1),), stride, False)):
            cx = 0
            for unit in units:
                cin, exp, cout, _ = plan[unit]
                cx += cin * exp + 9 * exp * exp + exp * cout
            rows.append((_BLOCK % (st, ident), len(units), units, cx))
    last = IRNET_TABLE1[-1][1]
    rows.append(('Conv (1x1/1), Batch Norm, ReLU', 1, ('head',), last * HEAD_CHANNELS))
    rows.append(('Global Avg Pool, Linear, Bias', 1, ('classifier',), 0))
    return rows


def _unit_of(name, prefix):
    block = BLOCK_RE.search(name)
    if block:
        return block.group(1)
    rest = name[len(prefix):]
    for unit, key in (('stem', 'stem_'), ('head', 'head_'), ('classifier', 'output_')):
        if rest.startswith(key):
            return unit
    return None


def _resolve(name):
    key = str(name).lower()
    if key.startswith('irnet_'):
        key = key[len('irnet_'):]
    if key.upper() not in IRNET_KINDS:
        raise ValueError('unknown IR-Net %r: use irnet_a, irnet_b or irnet_c' % name)
    return key.upper()


def irnet_layer_macs(name='irnet_a', input_size=56, classes=100):
    """Our Table 4 for ``irnet_a`` / ``irnet_b`` / ``irnet_c``: a list of :class:`IRNetLayer`.

    MACs and parameters are measured with :func:`hcnet.count` on the built
    network: blocks from its per-block breakdown (``stage<S>_block<B>``), stem,
    head and classifier by counting those sub-blocks at their input size. For
    ``irnet_c``, ``macs_efficient`` replaces each CondConv's ``E`` convolutions by
    one convolution plus the kernel mixing (output sizes read from the traced
    graph). Rows are those of the paper's Table 4, ``paper`` is its row.
    """
    kind = _resolve(name)
    net = IRNet(kind, classes=classes)             # counting needs no initialisation
    cx = count(net, input_size)
    # spatial size after each unit, from the traced graph
    data = mx.sym.var('data')
    internals = net(data).get_internals()
    _, shapes, _ = internals.infer_shape(data=(1, 3, input_size, input_size))
    shape_of = dict(zip(internals.list_outputs(), shapes))

    madds = {unit: v['madds'] for unit, v in cx.blocks.items()}
    params = {unit: v['params'] for unit, v in cx.blocks.items()}
    stem = count(net.stem, input_size)
    res = next(shape[2] for key, shape in shape_of.items()       # the head keeps its input size
               if key.startswith(net.head.prefix) and key.endswith('_output') and len(shape) == 4)
    head = count(net.head, res, channels=net.block_plan[-1][3])
    clf = count(net.output, 1, channels=HEAD_CHANNELS)
    for unit, c in (('stem', stem), ('head', head), ('classifier', clf)):
        madds[unit], params[unit] = c.madds, c.params

    weights = {}
    for pname, param in net.collect_params().items():
        if pname.endswith('_weight'):
            unit = _unit_of(pname, net.prefix)
            weights[unit] = weights.get(unit, 0) + int(_prod(param.shape))

    efficient = dict(madds)
    for blk in walk_blocks(net):
        if isinstance(blk, CondConv2D):
            out = shape_of[blk.prefix + 'fwd_output']
            unit = _unit_of(blk.prefix, net.prefix)
            efficient[unit] += (blk.madds(out[2], out[3], efficient=True)
                                - blk.madds(out[2], out[3], efficient=False))

    layers = []
    for i, (operation, rep, units, rule) in enumerate(_rows(net)):
        paper = PAPER_TABLE4[i] if (input_size, classes) == (56, 100) else None
        layers.append(IRNetLayer(
            operation=operation, rep=rep, units=units,
            macs=sum(madds[u] for u in units), params=sum(params[u] for u in units),
            filter_cx=sum(weights.get(u, 0) for u in units), filter_cx_paper_rule=rule,
            macs_efficient=(sum(efficient[u] for u in units) if kind == 'C' else None),
            paper=paper, note=PAPER_TABLE4_NOTES.get(i, '') if kind == 'A' else ''))
    total = sum(layer.macs for layer in layers)
    if total != cx.madds:
        raise AssertionError('per-layer MACs (%d) do not add up to the network\'s (%d)'
                             % (total, cx.madds))
    return layers


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _n(v):
    return '–' if v is None else '{:,}'.format(v)


def render_irnet_table(input_size=56):
    """Markdown: the paper's Table 4 beside ours for [A], then [A]/[B]/[C] per layer."""
    a = irnet_layer_macs('irnet_a', input_size)
    b = irnet_layer_macs('irnet_b', input_size)
    c = irnet_layer_macs('irnet_c', input_size)
    out = ['### IR-Net, Table 4: MACs and filter coefficients per operation ([A], %dx%d, '
           '100 classes)' % (input_size, input_size), '',
           'Ours: `hcnet.count` on `irnet_a` (conv + FC multiply-adds; BN, ReLU, pooling '
           'and residual adds are not counted, as in the paper). "Filter Cx, paper\'s rule": '
           'the paper\'s way of counting coefficients, recomputed (see below).', '',
           '| # | operation | rep | MACs paper | MACs ours | Δ | Filter Cx paper '
           '| Filter Cx, paper\'s rule | weights ours |',
           '|' + '---|' * 9]
    for i, layer in enumerate(a):
        p = layer.paper
        diff = '' if p is None else ('0' if layer.macs == p.macs
                                      else '{:+,} (note {})'.format(layer.macs - p.macs, i))
        out.append('| %d | %s | %d | %s | %s | %s | %s | %s | %s |' % (
            i, layer.operation, layer.rep, _n(p and p.macs), _n(layer.macs), diff,
            _n(p and p.filter_cx), _n(layer.filter_cx_paper_rule), _n(layer.filter_cx)))
    tm = sum(x.macs for x in a)
    out.append('| | **Total** | | %s | %s | %s | %s | %s | %s |' % (
        _n(PAPER_TABLE4_TOTAL[0]), _n(tm), '{:+,}'.format(tm - PAPER_TABLE4_TOTAL[0]),
        _n(PAPER_TABLE4_TOTAL[1]), _n(sum(x.filter_cx_paper_rule for x in a)),
        _n(sum(x.filter_cx for x in a))))
    out.append('')
    out.append('Notes:')
    out.append('')
    for i, note in sorted(PAPER_TABLE4_NOTES.items()):
        out.append('- Row %d: %s' % (i, note))
    out.append('- Filter Cx: ' + FILTER_CX_NOTE)
    out.append('- Trainable parameters of `irnet_a` (BN gamma/beta and biases included): '
               '{:,}.'.format(sum(x.params for x in a)))
    out += ['', '### IR-Net: MACs per operation for the three block kinds', '',
            '[B] adds SE (Ne/4 squeeze channels). [C] adds CondConv (4 experts) to every '
            'convolution of every block: "as counted" is our implementation (4 expert '
            'convolutions mixed at the output, plus the routing FC); "kernel mixing" is '
            'one convolution per example plus mixing the 4 kernels (4 |W|) and the routing '
            'FC, what an implementation that mixes kernels first costs.', '',
            '| # | operation | rep | [A] | [B] | [C] as counted | [C] kernel mixing |',
            '|' + '---|' * 7]
    for i, (la, lb, lc) in enumerate(zip(a, b, c)):
        out.append('| %d | %s | %d | %s | %s | %s | %s |' % (
            i, la.operation, la.rep, _n(la.macs), _n(lb.macs), _n(lc.macs),
            _n(lc.macs_efficient)))
    out.append('| | **Total** | | %s | %s | %s | %s |' % tuple(
        _n(sum(getattr(x, k) for x in rows)) for rows, k in
        ((a, 'macs'), (b, 'macs'), (c, 'macs'), (c, 'macs_efficient'))))
    out.append('| | **Params (trainable)** | | %s | %s | %s | |' % tuple(
        _n(sum(x.params for x in rows)) for rows in (a, b, c)))
    return '\n'.join(out)
