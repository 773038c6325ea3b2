"""Where batch-1 inference time goes: per operator category and per block kind.

    hcnet profile-latency --models hc_m15_i0,hc_m5_i10 --md breakdown.md
    hcnet profile-latency --models hc_m5_i10 --backends onnxruntime --input-size 64
    hcnet profile-latency --models hc_m15_i0,hc_m5_i10,hc_m10_i10 \
        --backends onnxruntime-fast --baseline hc_m15_i0    # + what 1x1 speed could give

Each backend runs in a fresh subprocess with ``--threads`` threads (the environment
of ``hcnet bench-latency``), builds the same seeded networks, and profiles
``--runs`` forward passes of each after ``--warmup`` (ONNX Runtime: the models'
runs interleaved, so that their tables can be compared):

``onnxruntime`` / ``onnxruntime-fast``
    ONNX Runtime's own profiler (``SessionOptions.enable_profiling``), one record
    per executed node of the *optimised* graph. The node's name carries the block
    it came from (``stage3_block2``), so time is split by block kind (stem, MBBlock,
    IdleBlock, head; layout reorders ONNX Runtime inserts are named by it and
    counted apart) and by category (1x1 convolution, depthwise convolution, SE,
    split / concat / layout, unfused residual add, classifier, other).
``mxnet`` / ``mxnet-fast``
    MXNet's profiler, aggregated by operator type (MXNet names no nodes), with
    operator bulking off (``MXNET_EXEC_BULK_EXEC_INFERENCE=0``) so every operator is
    timed on its own; the categories are coarser (convolutions are not told apart).

Profiling adds overhead per operator; the figures are for comparing parts of one
network, not for its latency (``hcnet bench-latency`` measures that).
"""
import argparse
import collections
import json
import os
import re
import sys
import tempfile

from . import latency as bench
from ..deploy.runtime import ort_session

BACKENDS = ('onnxruntime', 'onnxruntime-fast', 'mxnet', 'mxnet-fast')
CATEGORIES = ('conv 1x1', 'conv depthwise', 'conv other', 'SE', 'activation (unfused)',
              'split/concat/layout', 'residual add', 'classifier', 'other')
# element-wise activations ONNX Runtime runs as nodes of their own (swish: QuickGelu)
_ACT_OPS = {'QuickGelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Relu', 'Clip', 'Mul',
            'Tanh', 'LeakyRelu'}
KINDS = ('stem', 'MBBlock', 'IdleBlock', 'InvertedShuffleBlock', 'head', 'reorder (unnamed)')
_LAYOUT_OPS = {'Split', 'Slice', 'Concat', 'Reshape', 'Transpose', 'ReorderInput',
               'ReorderOutput', 'Identity', 'Gather',
               # MXNet
               'slice_axis', 'slice', 'Concat', 'concat', 'Reshape', 'reshape_like',
               'SliceChannel', 'split', 'transpose', 'Reorder', '_split_v2'}
_BLOCK = re.compile(r'(stage\d+_block\d+)_')


def block_kinds(net):
    """{'stage3_block2': 'IdleBlock', ...} from the built network."""
    kinds = {}
    for stage in net.features._children.values():
        for block in getattr(stage, '_children', {}).values():
            m = _BLOCK.search(block.prefix)
            if m:
                kinds[m.group(1)] = type(block).__name__
    return kinds


def kind_of(node_name, kinds):
    m = _BLOCK.search(node_name + '_')
    if m:
        return kinds.get(m.group(1), 'MBBlock')
    if 'stem' in node_name:
        return 'stem'
    if node_name.startswith(('Reorder', 'token')) or '_token_' in node_name:
        return 'reorder (unnamed)'
    return 'head'


def ort_category(op_type, attrs, name):
    if '_se_' in name or name.endswith('_se'):
        return 'SE'
    if op_type in ('Conv', 'FusedConv'):
        if attrs.get('group', 1) > 1:
            return 'conv depthwise'
        return 'conv 1x1' if list(attrs.get('kernel_shape', [1, 1])) == [1, 1] else 'conv other'
    if op_type in _LAYOUT_OPS:
        return 'split/concat/layout'
    if op_type in _ACT_OPS:
        return 'activation (unfused)'
    if op_type in ('Add', 'Sum'):
        return 'residual add'
    if op_type in ('Gemm', 'MatMul', 'Flatten'):
        return 'classifier'
    return 'other'


def mxnet_category(op):
    if op in _LAYOUT_OPS:
        return 'split/concat/layout'
    if 'conv' in op.lower():
        return 'conv (all)'
    if op in ('elemwise_add', '_plus', '_Plus', 'broadcast_add', 'add_n', 'ElementWiseSum'):
        return 'residual add'
    if op in ('FullyConnected', 'Flatten'):
        return 'classifier'
    if op in ('Pooling', '_contrib_AdaptiveAvgPooling2D', 'broadcast_mul', 'UpSampling'):
        return 'pooling / SE scale'
    if op in ('BatchNorm',):
        return 'BatchNorm'
    if op in ('Activation', 'hard_sigmoid', 'elemwise_mul', 'clip', '_mul_scalar',
              '_plus_scalar', 'sigmoid', 'relu', 'LeakyReLU'):
        return 'activations'
    return 'other'


# ----------------------------------------------------------------------------- worker
def _ort_session(net, name, backend, size, threads, tmp):
    onnx_file = bench.export_bench_onnx(net, name, size, tmp, fast=backend.endswith('fast'))
    optimized = os.path.join(tmp, name + '_optimized.onnx')
    session = ort_session(onnx_file, threads,
                          profile_prefix=os.path.join(tmp, name + '_profile'),
                                optimized_file=optimized)
    return session, optimized


def _ort_table(session, optimized, kinds, warmup):
    import numpy as np
    import onnx
    table = collections.Counter()
    with open(session.end_profiling()) as f:
        events = json.load(f)
    nodes = {}
    for node in onnx.load(optimized).graph.node:
        nodes[node.name] = (node.op_type, {a.name: onnx.helper.get_attribute_value(a)
                                           for a in node.attribute})
    per_node = collections.defaultdict(list)
    for e in events:
        if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
            per_node[e['name'][:-len('_kernel_time')]].append(e['dur'] / 1e3)
    for node, times in per_node.items():
        op_type, attrs = nodes.get(node, (node.split('_')[0], {}))
        ms = float(np.median(times[warmup:] or times))
        table[(kind_of(node, kinds), ort_category(op_type, attrs, node))] += ms
    return table


def _mxnet_table(net, backend, size, x_np, runs, warmup):
    import mxnet as mx
    table = collections.Counter()
    x = mx.nd.array(x_np)
    if backend == 'mxnet':
        runner = net
        runner.hybridize(static_alloc=True, static_shape=True)
    else:
        from hcnet.deploy import optimize
        runner = optimize(net, size)
    for _ in range(warmup):
        runner(x).wait_to_read()
    mx.profiler.set_config(profile_all=True, aggregate_stats=True,
                           filename=os.path.join(tempfile.mkdtemp(), 'profile.json'))
    mx.profiler.set_state('run')
    for _ in range(runs):
        runner(x).wait_to_read()
    mx.nd.waitall()
    mx.profiler.set_state('stop')
    stats = json.loads(mx.profiler.dumps(format='json', reset=True))
    for op, s in stats['Time'].get('operator', {}).items():
        if op in ('WaitForVar', 'DeleteVariable'):
            continue
        table[('all', mxnet_category(op))] += s['Total'] / runs
    return table


def worker(spec):
    """Profile the models of ``spec['models']`` on one backend: a result per model.

    ONNX Runtime sessions profile themselves, so their runs are interleaved model
    by model (as ``benchmark_latency.py`` does; a drift of the machine's speed then
    hits every model alike); MXNet's profiler is global, so its models run in turn.
    """
    from hcnet.deploy import ORIGINAL, ORT_OPTIONS, to_symbol
    names, backend, size = spec['models'], spec['backend'], spec['input_size']
    runs, warmup = spec['runs'], spec['warmup']
    x_np = bench.bench_image(1, size, seed=1)
    built = {name: bench.build_bench_model(name, size) for name in names}
    kinds = {name: block_kinds(net) for name, net in built.items()}
    tables = {}
    if backend.startswith('onnxruntime'):
        tmp = tempfile.mkdtemp(prefix='hcnet_profile_')
        sessions = {name: _ort_session(net, name, backend, size, spec['threads'], tmp)
                    for name, net in built.items()}
        feeds = {name: {s.get_inputs()[0].name: x_np} for name, (s, _) in sessions.items()}
        for _ in range(warmup + runs):          # the warm-up runs' records are dropped
            for name, (session, _) in sessions.items():
                session.run(None, feeds[name])
        for name, (session, optimized) in sessions.items():
            tables[name] = _ort_table(session, optimized, kinds[name], warmup)
    else:
        for name, net in built.items():
            tables[name] = _mxnet_table(net, backend, size, x_np, runs, warmup)
    out = []
    for name, net in built.items():
        pointwise = to_symbol(net, size, **ORIGINAL).conv_madds(size, pointwise=True)
        emitted = (to_symbol(net, size, **ORT_OPTIONS).conv_madds(size, pointwise=True)
                   if backend == 'onnxruntime-fast' else pointwise)
        base = {k: v for k, v in spec.items() if k != 'models'}
        out.append(dict(base, model=name,
                        table=[[k, c, v] for (k, c), v in tables[name].items()],
                        blocks=dict(collections.Counter(kinds[name].values())),
                        pointwise_madds=pointwise, emitted_pointwise_madds=emitted))
    return out


# ----------------------------------------------------------------------------- parent
def measure(spec):
    env = bench.thread_env(spec['threads'])
    env['MXNET_EXEC_BULK_EXEC_INFERENCE'] = '0'
    return bench.run_worker(__name__, spec, env)


def render(results, baseline=None):
    lines = ['# Where the time goes (batch 1, profiled; ms per forward pass)', '']
    for r in results:
        cells = collections.defaultdict(float)
        for kind, cat, ms in r['table']:
            cells[(kind, cat)] += ms
        total = sum(cells.values())
        kinds = [k for k in KINDS + ('all',) if any(key[0] == k for key in cells)]
        cats = [c for c in CATEGORIES + ('conv (all)', 'activations', 'BatchNorm',
                                         'pooling / SE scale')
                if any(key[1] == c for key in cells)]
        cats = list(dict.fromkeys(cats))
        lines += ['## `%s`, %s, %d thread(s), %dx%d: %.2f ms profiled' % (
            r['model'], r['backend'], r['threads'], r['input_size'], r['input_size'], total), '',
            '| block kind (count) | ' + ' | '.join(cats) + ' | total |',
            '|---|' + '---|' * (len(cats) + 1)]
        for kind in kinds:
            row = [cells.get((kind, c), 0.0) for c in cats]
            n = r['blocks'].get(kind)
            label = '%s (%d)' % (kind, n) if n else kind
            lines.append('| %s | %s | %.3f |' % (label, ' | '.join('%.3f' % v for v in row),
                                                 sum(row)))
        col = [sum(cells.get((k, c), 0.0) for k in kinds) for c in cats]
        lines.append('| **all** | %s | %.3f |' % (
            ' | '.join('%.3f (%.0f%%)' % (v, 100 * v / max(total, 1e-9)) for v in col), total))
        per_block = ['%s %.3f ms' % (k, sum(v for (kk, _), v in cells.items() if kk == k)
                                     / r['blocks'][k])
                     for k in kinds if r['blocks'].get(k)]
        if per_block:
            lines += ['', 'Mean per block: ' + ', '.join(per_block) + '.']
        lines.append('')
    if baseline:
        lines += attainable(results, baseline)
    return '\n'.join(lines) + '\n'


def _total(r, category=None):
    return sum(ms for _, cat, ms in r['table'] if category in (None, cat))


def attainable(results, baseline):
    """What the 1x1 convolutions can still give, per model against ``baseline``.

    An IdleBlock halves its 1x1 convolutions and keeps everything else at the
    substituted block's width. ``1x1 at baseline rate`` replaces the model's profiled
    1x1 time by the baseline's, scaled by their logical 1x1 MAdds: the ratio if its
    1x1 convolutions ran at the baseline's time per MAdd with no padding, everything
    else as profiled. It bounds what faster 1x1 kernels or less padding can buy.
    """
    base = {r['backend']: r for r in results if r['model'] == baseline}
    rows = []
    for r in results:
        b = base.get(r['backend'])
        if b is None or r['model'] == baseline or r['backend'].startswith('mxnet'):
            continue
        c_r, c_b = _total(r, 'conv 1x1'), _total(b, 'conv 1x1')
        scale = r['pointwise_madds'] / b['pointwise_madds']
        ideal = (_total(r) - c_r + c_b * scale) / _total(b)
        rows.append('| `%s` / `%s` | %s | %.3f | %.3f (%.3f) | %.3f | %.3f |' % (
            r['model'], baseline, r['backend'], _total(r) / _total(b), scale,
            r['emitted_pointwise_madds'] / b['emitted_pointwise_madds'],
            c_r / c_b if c_b else float('nan'), ideal))
    if not rows:
        return []
    return ['## Attainable with the 1x1 convolutions alone', '',
            'Profiled time ratio; logical (emitted, with padding) 1x1 MAdds ratio; profiled '
            '1x1 time ratio; and the time ratio if the model\'s 1x1 convolutions ran at the '
            "baseline's time per MAdd without padding, every other operator as profiled.", '',
            '| models | backend | time ratio | 1x1 MAdds ratio | 1x1 time ratio | '
            '1x1 at baseline rate |', '|---|---|---|---|---|---|'] + rows + ['']


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='hcnet profile-latency', description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__)
    parser.add_argument('--models', default='hc_m15_i0,hc_m5_i10',
                        help='comma-separated zoo names')
    parser.add_argument('--backends', default='onnxruntime,onnxruntime-fast',
                        help='comma-separated, from: %s' % ', '.join(BACKENDS))
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--runs', type=int, default=50)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--md', help='write the Markdown tables here')
    parser.add_argument('--json', help='write the raw tables here')
    parser.add_argument('--baseline', help='one of --models: add the table of what the '
                        "other models' 1x1 convolutions can still give against it")
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    import hcnet
    names = bench.csv_list(args.models)
    backends = bench.csv_list(args.backends)
    unknown = [n for n in names if not hcnet.model_zoo.is_model(n)]
    bad = [b for b in backends if b not in BACKENDS]
    if unknown or bad or args.threads < 1 or args.runs < 1 or args.warmup < 0:
        print('error: %s' % ('unknown models %s' % unknown if unknown else
                             'unknown backends %s' % bad if bad else
                             'bad --threads / --runs / --warmup'), file=sys.stderr)
        return 2
    if args.baseline and args.baseline not in names:
        print('error: --baseline %s is not one of --models' % args.baseline, file=sys.stderr)
        return 2
    from tqdm import tqdm
    results = []
    for backend in tqdm(backends, desc='profile', unit='backend'):
        results.extend(measure(dict(models=names, backend=backend, threads=args.threads,
                                    input_size=args.input_size, runs=args.runs,
                                    warmup=args.warmup)))
    order = {name: i for i, name in enumerate(names)}
    results.sort(key=lambda r: order[r['model']])            # tables model by model
    md = render(results, args.baseline)
    print(md)
    if args.md:
        bench.write_result(args.md, md)
    if args.json:
        bench.write_result(args.json, json.dumps(results, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
