"""Batch-1 CPU inference latency of zoo networks, in the layout of the paper's Tables 1 and 3.

    hcnet bench-latency                                   # Tables 1 + 3
    hcnet bench-latency --preset targets --threads 1 --rounds 3
    hcnet bench-latency --preset figure10 --png fig10.png --json fig10.json
    hcnet bench-latency --models hc_m5_i10 --threads 1 --runs 3 --warmup 1 \\
        --input-size 64 --backends mxnet,mxnet-fast,onnxruntime --md t.md --json t.json

Every (backend, thread count) is measured in a fresh subprocess whose
environment fixes the thread count before any library is imported:
``OMP_NUM_THREADS = MKL_NUM_THREADS = OPENBLAS_NUM_THREADS = T`` and
``MXNET_CPU_WORKER_NTHREADS=1`` (one engine worker; intra-op parallelism is
oneDNN's OpenMP), and for ONNX Runtime ``intra_op_num_threads = T``,
``inter_op_num_threads = 1``, sequential execution, all graph optimisations,
no spinning of idle threads. The subprocess builds every model, runs ``--warmup`` untimed forward passes of
each, then ``--runs`` timed passes of one (1, 3, S, S) image *interleaved* (one
pass of each model in turn), so a change in the machine's speed -- this is a
shared virtual machine -- hits every model alike; it reports the median with
p10/p90 and the interquartile range. ``--rounds R`` repeats everything R times in
new subprocesses and pools the samples; ratios are medians of per-round ratios.
``--quiet-wait S`` waits (up to S seconds) before each measurement until no other
process is runnable, and every measurement records the load average and that busy fraction.

Backends:

``mxnet``             the Gluon network, hybridized with static allocation;
``mxnet-fast``        :func:`hcnet.deploy.optimize` (folded BN, idle channels left
                      in place, ...; static allocation);
``onnxruntime``       the network exported as ``hcnet export`` does
                      (``mx.onnx.export_model``), run by ONNX Runtime;
``onnxruntime-fast``  the :mod:`hcnet.deploy` graph (``ORT_OPTIONS``: channel
                      counts padded to 16) exported the same way.

Weights are random (seeded, identical in every subprocess), with BatchNorm running
statistics calibrated on random images so activations are O(1) (fresh statistics
shrink them towards denormals, which would distort timings). Each subprocess also
checks that its backend reproduces the Gluon outputs (``max_rel_diff``).

Outputs: a Markdown table on stdout (and ``--md FILE``), ``--json FILE`` with every
sample, and ``--png FILE``: latency against depth (number of blocks), one panel per
thread count, one line per base / composition family and backend, as the paper's
Figure 10. Files are written under a temporary name and renamed.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from ..fileio import atomic_path, write_text
from ..nn.utils import walk_blocks

#: where the hcnet package that runs this lives: workers import the same one
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BACKENDS = ('mxnet', 'mxnet-fast', 'onnxruntime', 'onnxruntime-fast')
_THREAD_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS',
                'MXNET_CPU_WORKER_NTHREADS', 'MXNET_OMP_MAX_THREADS')

PRESETS = {
    'table1': ['hc_m15_i0', 'hc_m5_i10', 'hc_m10_i5', 'hc_m10_i10', 'hc_m10_i10_lr'],
    'table3': ['hc_effb0_m16_i0', 'hc_effb0_m7_i9', 'hc_effb0_m11_i5', 'hc_effb0_m11_i10',
               'hc_effb0_m11_i10_lr'],
    'targets': ['hc_m15_i0', 'hc_m5_i10', 'hc_m10_i10', 'hc_effb0_m16_i0', 'hc_effb0_m7_i9'],
    'figure10': ['hc_m15_i0', 'hc_m25_i0', 'hc_m35_i0', 'hc_m5_i10', 'hc_m10_i10',
                 'hc_m15_i10', 'hc_m15_i20'],
    'figure10-effb0': ['hc_effb0_m16_i0', 'hc_effb0_m30_i0', 'hc_effb0_m44_i0',
                       'hc_effb0_m7_i9', 'hc_effb0_m11_i10', 'hc_effb0_m16_i14',
                       'hc_effb0_m16_i28'],
}
PRESETS['tables'] = PRESETS['table1'] + PRESETS['table3']
PRESETS['all'] = list(dict.fromkeys(PRESETS['tables'] + PRESETS['figure10']
                                    + PRESETS['figure10-effb0']))

#: (numerator, denominator, target ratio at 1 thread, what). ``SAVING``: realise at
#: least 2/3 of the theoretical saving, i.e. latency ratio <= 1 - 2/3 (1 - MAdds ratio),
#: with the MAdds of the networks measured (hcnet.count, standard convention).
SAVING = 'two-thirds of the MAdds saving'
TARGETS = (
    ('hc_m5_i10', 'hc_m15_i0', SAVING, 'MobileNetV3 Maximum / None'),
    ('hc_effb0_m7_i9', 'hc_effb0_m16_i0', SAVING, 'EfficientNet-B0 Maximum / None'),
    ('hc_m10_i10', 'hc_m15_i0', 1.0, 'MobileNetV3 Adjacent+1 / None'),
)


def target_ratio(target, madds_ratio):
    """The latency-ratio target: a number, or derived from the MAdds ratio (SAVING)."""
    if target == SAVING:
        return None if madds_ratio is None else 1.0 - 2.0 / 3.0 * (1.0 - madds_ratio)
    return target


# ----------------------------------------------------------------------------- worker
def _calibrate_bn(net, size, seed=0, batch=4):
    """Set every BatchNorm's running statistics to those of a random batch.

    Then, as in a trained network, residual branches add little: the last BatchNorm
    of every residual MBBlock has its gamma and beta scaled by 1/4. (With unit-variance
    branches the activations of a deep random network grow with every residual add --
    logits in the thousands for 25 blocks -- and float rounding differences between
    runtimes grow with them, to 10% of the output.)
    """
    import mxnet as mx
    from mxnet import autograd
    from mxnet.gluon import nn
    bns = [b for b in walk_blocks(net) if isinstance(b, nn.BatchNorm)]
    saved = [bn._kwargs.get('momentum', 0.9) for bn in bns]
    for bn in bns:
        bn._kwargs['momentum'] = 0.0
    x = mx.nd.array(bench_image(batch, size, seed))
    with autograd.record(train_mode=True):
        net(x)
    for bn, m in zip(bns, saved):
        bn._kwargs['momentum'] = m
    from hcnet.nn.blocks import MBBlock

    def residual_blocks(block):
        if isinstance(block, MBBlock) and block.use_residual:
            yield block
        for child in block._children.values():
            yield from residual_blocks(child)
    for blk in residual_blocks(net):
        last = []
        walk_bn = [blk.body]
        while walk_bn:
            b = walk_bn.pop(0)
            if isinstance(b, nn.BatchNorm):
                last = [b]
            walk_bn[:0] = list(b._children.values())
        for bn in last:
            for key, p in bn.params.items():
                if key.endswith(('gamma', 'beta')):
                    p.set_data(p.data() * 0.25)


def bench_image(batch, size, seed):
    import numpy as np
    return np.random.RandomState(seed).uniform(-2, 2, (batch, 3, size, size)).astype('float32')


def build_bench_model(name, size):
    import mxnet as mx
    import numpy as np
    import hcnet
    mx.random.seed(0)
    np.random.seed(0)
    net = hcnet.get_model(name)
    _calibrate_bn(net, size)
    return net


def export_bench_onnx(net, name, size, tmp, fast):
    from ..deploy.onnx import export_onnx
    prefix = os.path.join(tmp, name + ('_fast' if fast else ''))
    if fast:
        from hcnet.deploy import ORT_OPTIONS, export
        sym_file, params_file = export(net, prefix, size, **ORT_OPTIONS)
    else:
        import mxnet as mx
        net.hybridize()
        net(mx.nd.array(bench_image(1, size, seed=1)))
        net.export(prefix, epoch=0)
        sym_file, params_file = prefix + '-symbol.json', prefix + '-0000.params'
    onnx_file = prefix + '.onnx'
    export_onnx(sym_file, params_file, onnx_file, (1, 3, size, size), dynamic_batch=False)
    if fast:
        import onnx
        from hcnet.deploy import patch_onnx
        model = onnx.load(onnx_file)
        if patch_onnx(model):
            onnx.save(model, onnx_file)
    return onnx_file


def _runner(name, backend, size, threads, fast_options):
    """(run, get outputs, reference outputs, info) for one model on one backend."""
    import mxnet as mx
    net = build_bench_model(name, size)
    x_np = bench_image(1, size, seed=1)
    x = mx.nd.array(x_np)
    ref = net(x).asnumpy()                        # imperative Gluon, inference mode
    info = {}
    if backend in ('mxnet', 'mxnet-fast'):
        if backend == 'mxnet':
            runner = net
            runner.hybridize(static_alloc=True, static_shape=True)
        else:
            from hcnet.deploy import optimize
            runner = optimize(net, size, **fast_options)
            info['deploy'] = {'options': runner.deploy_graph.options,
                              'fused': runner.fused,
                              'ops': runner.deploy_graph.op_counts(),
                              'stats': runner.deploy_graph.stats,
                              'emitted_madds_m': runner.deploy_graph.conv_madds(size) / 1e6}

        def run():
            out = runner(x)
            out.wait_to_read()
            return out
        get = lambda out: out.asnumpy()          # noqa: E731
    elif backend in ('onnxruntime', 'onnxruntime-fast'):
        import onnxruntime as ort
        tmp = tempfile.mkdtemp(prefix='hcnet_latency_')
        onnx_file = export_bench_onnx(net, name, size, tmp, fast=backend.endswith('fast'))
        from ..deploy.runtime import ort_session
        session = ort_session(onnx_file, threads)
        feed = {session.get_inputs()[0].name: x_np}
        info['onnxruntime'] = ort.__version__
        info['onnx_bytes'] = os.path.getsize(onnx_file)

        def run():
            return session.run(None, feed)[0]
        get = lambda out: out                    # noqa: E731
    else:
        raise ValueError('unknown backend %r' % backend)
    out = get(run())
    from ..deploy import max_rel_diff
    info['max_rel_diff'] = max_rel_diff(out, ref)
    return run, info


def worker(spec):
    """Measure the models of ``spec['models']`` on one backend and thread count.

    The models' forward passes are interleaved (one of each, in turn, ``runs``
    times), so that a change of the machine's speed during the measurement hits
    every model alike and their ratios stay fair. Returns a JSON-able dict per model.
    """
    import mxnet as mx
    names = spec.get('models') or [spec['model']]
    runners = {}
    for name in names:
        runners[name] = _runner(name, spec['backend'], spec['input_size'], spec['threads'],
                                spec.get('fast_options', {}))
    for run, _ in runners.values():
        for _ in range(spec['warmup']):
            run()
    times = {name: [] for name in names}
    load_before = _loadavg()
    for _ in range(spec['runs']):
        for name in names:
            run = runners[name][0]
            tic = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - tic) * 1e3)
    seen = {k: os.environ.get(k) for k in _THREAD_VARS}
    common = dict(load_before=load_before, load_after=_loadavg(), mxnet=mx.__version__,
                  worker_env=seen, worker_threads=_num_threads())
    base = {k: v for k, v in spec.items() if k != 'models'}
    return [dict(base, model=name, times_ms=times[name], **runners[name][1], **common)
            for name in names]


def busy_fraction(duration=2.0, step=0.1):
    """Fraction of ``duration`` during which another task was runnable (/proc/loadavg)."""
    samples = busy = 0
    end = time.time() + duration
    while time.time() < end:
        try:
            with open('/proc/loadavg') as f:
                running = int(f.read().split()[3].split('/')[0])
        except (OSError, ValueError, IndexError):
            return None
        samples += 1
        busy += running > 1                  # the reader itself is one running task
        time.sleep(step)
    return busy / max(samples, 1)


def wait_quiet(max_wait, threshold=0.2):
    """Wait (up to ``max_wait`` s) until no other task competes for the CPU.

    Returns (busy fraction of the last check, seconds waited).
    """
    waited, tic = 0.0, time.time()
    while True:
        frac = busy_fraction()
        waited = time.time() - tic
        if frac is None or frac <= threshold or waited >= max_wait:
            return frac, waited
        time.sleep(3.0)


def _num_threads():
    try:
        with open('/proc/self/status') as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith('Threads:'))
    except (OSError, StopIteration):
        return None


def _loadavg():
    try:
        with open('/proc/loadavg') as f:
            return [float(v) for v in f.read().split()[:3]]
    except OSError:
        return None


# ----------------------------------------------------------------------------- parent
def thread_env(threads):
    """Environment of a measurement subprocess with ``threads`` threads."""
    env = dict(os.environ)
    t = str(threads)
    env.update(OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t,
               MXNET_CPU_WORKER_NTHREADS='1', MXNET_OMP_MAX_THREADS=t,
               PYTHONPATH=_PACKAGE_PARENT + os.pathsep + env.get('PYTHONPATH', ''))
    return env


def run_worker(module, spec, env, timeout=3600):
    """Run ``python -m module --worker SPEC`` in a subprocess with ``env``; its JSON list."""
    proc = subprocess.run([sys.executable, '-m', module, '--worker', json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('[')]
    if proc.returncode != 0 or not lines:
        raise RuntimeError('%s --worker %s failed (exit %d):\n%s' % (
            module, json.dumps(spec), proc.returncode, proc.stderr[-4000:]))
    return json.loads(lines[-1])


def measure(spec, timeout=3600):
    env = thread_env(spec['threads'])
    results = run_worker(__name__, spec, env, timeout)
    for result in results:
        result['env'] = {k: env[k] for k in _THREAD_VARS}
    return results


def summarize(times):
    import numpy as np
    t = np.asarray(times, dtype=np.float64)
    p = np.percentile(t, [10, 25, 50, 75, 90])
    return {'median': float(p[2]), 'p10': float(p[0]), 'p90': float(p[4]),
            'p25': float(p[1]), 'p75': float(p[3]), 'iqr': float(p[3] - p[1]),
            'mean': float(t.mean()), 'min': float(t.min()), 'n': int(t.size)}


def describe(names, input_size):
    """Per model: label, MAdds / params (paper convention and standard), #M, #I, depth."""
    import hcnet
    from hcnet.model_zoo import HC_RECIPES
    from hcnet.paper.reference import PAPER_ROWS
    labels = {}
    for row in PAPER_ROWS:
        if row.table in (1, 3):
            labels.setdefault(row.model, row.label)
    out = {}
    for name in names:
        net = hcnet.get_model(name)
        cx = hcnet.count(net, input_size)
        madds, params = cx.paper_for(net.base)
        std_madds, std_params = cx.standard()
        out[name] = {'label': labels.get(name, HC_RECIPES[name][2]), 'base': net.base.name,
                     'base_title': net.base.title, 'madds_m': madds, 'params_m': params,
                     'standard_madds_m': std_madds, 'standard_params_m': std_params,
                     'num_mb': net.pattern.num_mb, 'num_idle': net.pattern.num_idle,
                     'depth': net.pattern.num_mb + net.pattern.num_idle,
                     'pattern': str(net.pattern)}
    return out


def ratios(results, backends, threads_list, models=None):
    """Target ratios for every backend and thread count present.

    ``ratio``: median of the per-round ratios (numerator and denominator of one round
    were measured minutes apart at most, so slow drift of the machine cancels);
    ``pooled_ratio``: ratio of the medians of all samples.
    """
    import numpy as np
    rows = []
    models = models or {}
    for num, den, target, what in TARGETS:
        madds = None
        if num in models and den in models:
            madds = models[num]['standard_madds_m'] / models[den]['standard_madds_m']
        target = target_ratio(target, madds)
        for backend in backends:
            for t in threads_list:
                a, b = results.get((num, backend, t)), results.get((den, backend, t))
                if not a or not b:
                    continue
                pooled = a['stats']['median'] / b['stats']['median']
                per_round = [ra['median'] / rb['median']
                             for ra, rb in zip(a.get('rounds', []), b.get('rounds', []))]
                r = float(np.median(per_round)) if per_round else pooled
                rows.append({'what': what, 'numerator': num, 'denominator': den,
                             'backend': backend, 'threads': t, 'ratio': r,
                             'pooled_ratio': pooled, 'per_round': per_round,
                             'madds_ratio': madds, 'target': target,
                             'met': (bool(r <= target) if t == 1 and target is not None
                                     else None)})
    return rows


def render_markdown(meta, models, results, backends, threads_list, target_rows):
    lines = ['# Batch-1 CPU inference latency', '',
             '%s; input 1x3x%dx%d; %d warm-up + %d timed runs x %d round(s); per round one '
             'fresh subprocess per backend and thread count, its models interleaved run by '
             'run; median (p10-p90) in ms.' % (
                 meta['cpu'], meta['input_size'], meta['input_size'], meta['warmup'],
                 meta['runs'], meta['rounds']),
             'Load average before: %s, after: %s. MAdds / Params: the paper\'s counting '
             'convention (hcnet.count, Tables 1 and 3).' % (
                 meta['load_before'], meta['load_after']),
             'Competing runnable processes just before the measurements: busy fraction '
             'median %s, max %s (--quiet-wait %g s).' % (
                 meta.get('busy_median'), meta.get('busy_max'), meta.get('quiet_wait', 0)), '']
    for base in dict.fromkeys(m['base_title'] for m in models.values()):
        names = [n for n, m in models.items() if m['base_title'] == base]
        head = ['Config', 'model', 'MAdds (M)', 'Params (M)', '#MBBlock', '#IdleBlock']
        for backend in backends:
            head.append('%s %s (ms)' % (backend, '/'.join('%dT' % t for t in threads_list)))
        lines += ['## %s' % base, '', '| ' + ' | '.join(head) + ' |',
                  '|' + '---|' * len(head)]
        for name in names:
            m = models[name]
            cells = [m['label'], '`%s`' % name, '%.1f' % m['madds_m'], '%.2f' % m['params_m'],
                     str(m['num_mb']), str(m['num_idle'])]
            for backend in backends:
                parts = []
                for t in threads_list:
                    r = results.get((name, backend, t))
                    parts.append('–' if not r else '%.2f (%.2f-%.2f)' % (
                        r['stats']['median'], r['stats']['p10'], r['stats']['p90']))
                cells.append(' / '.join(parts))
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')
    if target_rows:
        lines += ['## Latency ratios', '',
                  'Median of the per-round ratios (rounds: %s); pooled: ratio of the '
                  'medians of all samples.' % ', '.join(str(i + 1) for i in range(
                      meta['rounds'])), '',
                  '| ratio | backend | threads | measured | per round | pooled | MAdds ratio '
                  '| target (1 thread) |', '|---|---|---|---|---|---|---|---|']
        for r in target_rows:
            verdict = '' if r['met'] is None else (' met' if r['met'] else ' **not met**')
            lines.append('| %s (`%s` / `%s`) | %s | %d | %.3f | %s | %.3f | %s | %s%s |' % (
                r['what'], r['numerator'], r['denominator'], r['backend'], r['threads'],
                r['ratio'], ' '.join('%.3f' % v for v in r['per_round']),
                r['pooled_ratio'],
                '–' if r.get('madds_ratio') is None else '%.3f' % r['madds_ratio'],
                '–' if r['target'] is None else '<= %.3f' % r['target'], verdict))
        lines += ['', 'Targets: latency ratio <= 1 - 2/3 (1 - MAdds ratio) for Maximum / None '
                  '(two thirds of the theoretical saving realised), <= 1 for Adjacent+1 / '
                  'None.']
        lines.append('')
    bad = [(k, r['max_rel_diff']) for k, r in results.items() if r['max_rel_diff'] > 1e-4]
    lines.append('Outputs checked against the Gluon network in every measurement: max relative '
                 'difference %.2g%s.' % (max([r['max_rel_diff'] for r in results.values()],
                                            default=0.0),
                                        '' if not bad else ' -- ABOVE 1e-4 for %s' % bad))
    return '\n'.join(lines) + '\n'


def render_png(path, models, results, backends, threads_list, input_size):
    """Latency against depth as the paper's Figure 10: a panel per backend (rows) and
    thread count (columns), a line per base network and composition family."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = [b for b in backends if any(k[1] == b for k in results)] or list(backends)
    fig, axes = plt.subplots(len(rows), len(threads_list),
                             figsize=(6.0 * len(threads_list), 3.6 * len(rows)),
                             squeeze=False)
    families = {}
    for name, m in models.items():
        kind = 'MBBlock only' if m['num_idle'] == 0 else 'hybrid, IdleBlocks'
        families.setdefault('%s, %s' % (m['base_title'], kind), []).append(name)
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ri, backend in enumerate(rows):
        for ci, t in enumerate(threads_list):
            ax = axes[ri][ci]
            for fi, (family, names) in enumerate(sorted(families.items())):
                names = sorted(names, key=lambda n: (models[n]['depth'], models[n]['madds_m']))
                pts = [(models[n]['depth'], results[(n, backend, t)]['stats'], n)
                       for n in names if (n, backend, t) in results]
                if not pts:
                    continue
                hybrid = 'hybrid' in family
                ax.plot([p[0] for p in pts], [p[1]['median'] for p in pts],
                        linestyle='-' if hybrid else '--', marker='o' if hybrid else 's',
                        color=colors[fi % len(colors)], label=family)
                ax.vlines([p[0] for p in pts], [p[1]['p10'] for p in pts],
                          [p[1]['p90'] for p in pts], color=colors[fi % len(colors)],
                          alpha=0.4)
                for d, st, n in pts:
                    ax.annotate(n.replace('hc_', '').replace('effb0_', ''),
                                (d, st['median']), fontsize=6, textcoords='offset points',
                                xytext=(3, 3))
            ax.set_title('%s, %d thread%s' % (backend, t, '' if t == 1 else 's'), fontsize=9)
            ax.set_xlabel('depth (number of blocks)', fontsize=8)
            ax.set_ylabel('ms, batch 1, %dx%d' % (input_size, input_size), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format='png')
    plt.close(fig)


def write_result(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text(path, text)


def csv_list(value, cast=str):
    return [cast(v.strip()) for v in value.split(',') if v.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='hcnet bench-latency', description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__)
    parser.add_argument('--models', default=None,
                        help='comma-separated zoo names (default: --preset)')
    parser.add_argument('--preset', default='tables', choices=sorted(PRESETS),
                        help='model list when --models is not given (default: tables = 1 + 3)')
    parser.add_argument('--backends', default='mxnet,mxnet-fast,onnxruntime,onnxruntime-fast',
                        help='comma-separated, from: %s' % ', '.join(BACKENDS))
    parser.add_argument('--threads', default='1,2', help='comma-separated thread counts')
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--runs', type=int, default=100, help='timed runs per measurement')
    parser.add_argument('--warmup', type=int, default=10, help='untimed runs first')
    parser.add_argument('--rounds', type=int, default=1,
                        help='repeat all measurements, interleaved, pooling the samples')
    parser.add_argument('--md', help='write the Markdown table here')
    parser.add_argument('--json', help='write all results (every sample) here')
    parser.add_argument('--png', help='write the latency-vs-depth figure here')
    parser.add_argument('--mxnet-fast-options', default='{}',
                        help='JSON keyword arguments of hcnet.deploy.optimize for mxnet-fast '
                             '(default: its defaults), e.g. \'{"hswish_conv": false}\'')
    parser.add_argument('--quiet-wait', type=float, default=0.0,
                        help='before each measurement wait up to this many seconds until no '
                             'other process is runnable (default 0: do not wait); the busy '
                             'fraction seen is recorded either way')
    parser.add_argument('--replot', metavar='JSON',
                        help='no measuring: re-render --md / --png from a --json file')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.replot:
        try:
            with open(args.replot) as f:
                doc = json.load(f)
            doc['results'], doc['meta'], doc['models']      # noqa: B018  (a --json file?)
        except (OSError, ValueError, KeyError, TypeError) as err:
            print('error: --replot %s: not a readable --json file of this script (%s)'
                  % (args.replot, err), file=sys.stderr)
            return 2
        results = {(r['model'], r['backend'], r['threads']): r for r in doc['results']}
        md = render_markdown(doc['meta'], doc['models'], results, doc['backends'],
                             doc['threads'], ratios(results, doc['backends'], doc['threads'],
                                                    doc['models']))
        print(md)
        if args.md:
            write_result(args.md, md)
        if args.png:
            render_png(args.png, doc['models'], results, doc['backends'], doc['threads'],
                       doc['meta']['input_size'])
        return 0

    import hcnet
    names = csv_list(args.models) if args.models else PRESETS[args.preset]
    backends = csv_list(args.backends)
    threads_list = csv_list(args.threads, int)
    unknown = [n for n in names if not hcnet.model_zoo.is_model(n)]
    bad = [b for b in backends if b not in BACKENDS]
    if unknown or bad or not threads_list or min(threads_list) < 1 or args.runs < 1:
        print('error: %s' % ('unknown models %s' % unknown if unknown else
                             'unknown backends %s' % bad if bad else
                             'bad --threads / --runs'), file=sys.stderr)
        return 2
    try:
        fast_options = json.loads(args.mxnet_fast_options)
    except ValueError:
        fast_options = None
    if not isinstance(fast_options, dict):
        print('error: --mxnet-fast-options must be a JSON object', file=sys.stderr)
        return 2
    from hcnet.deploy import check_options
    try:
        check_options({k: v for k, v in fast_options.items()
                       if k not in ('fuse', 'hybridize')})   # optimize()'s own
    except (TypeError, ValueError) as err:
        print('error: --mxnet-fast-options: %s' % err, file=sys.stderr)
        return 2
    models = describe(names, args.input_size)
    # one subprocess per (backend, threads, round), its models interleaved
    specs = [dict(models=names, backend=b, threads=t, input_size=args.input_size,
                  runs=args.runs, warmup=args.warmup, fast_options=fast_options)
             for t in threads_list for b in backends]
    from tqdm import tqdm
    load_before = _loadavg()
    started = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    pooled = {}
    bar = tqdm(total=len(specs) * args.rounds, unit='measurement', desc='latency')
    for rnd in range(args.rounds):
        for spec in specs:
            bar.set_postfix_str('%s %dT, %d models' % (spec['backend'], spec['threads'],
                                                       len(names)))
            busy, waited = (wait_quiet(args.quiet_wait) if args.quiet_wait > 0
                            else (busy_fraction(0.5), 0.0))
            for r in measure(dict(spec, round=rnd)):
                r.update(busy_before=busy, waited_s=round(waited, 1))
                key = (r['model'], r['backend'], r['threads'])
                entry = pooled.setdefault(key, {'times_ms': [], 'rounds': [],
                                                'max_rel_diff': 0.0})
                entry['times_ms'] += r['times_ms']
                entry['max_rel_diff'] = max(entry['max_rel_diff'], r['max_rel_diff'])
                entry['rounds'].append({k: v for k, v in r.items() if k != 'times_ms'}
                                       | {'median': summarize(r['times_ms'])['median']})
            bar.update()
    bar.close()
    load_after = _loadavg()
    results = {}
    for key, entry in pooled.items():
        results[key] = dict(entry, stats=summarize(entry['times_ms']))
    target_rows = ratios(results, backends, threads_list, models)
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name')),
                       cpu)
    except OSError:
        pass
    meta = {'started': started, 'cpu': '%s, %d logical cores' % (cpu, os.cpu_count() or 0),
            'input_size': args.input_size, 'runs': args.runs, 'warmup': args.warmup,
            'rounds': args.rounds, 'load_before': load_before, 'load_after': load_after,
            'command': ' '.join([os.path.basename(sys.argv[0])] + (argv or sys.argv[1:])),
            'thread_env': {str(t): {k: v for k, v in thread_env(t).items()
                                    if k in _THREAD_VARS} for t in threads_list},
            'mxnet_fast_options': fast_options, 'quiet_wait': args.quiet_wait}
    busy = [rnd.get('busy_before') for r in results.values() for rnd in r['rounds']
            if rnd.get('busy_before') is not None]
    if busy:
        import numpy as np
        meta['busy_median'] = round(float(np.median(busy)), 2)
        meta['busy_max'] = round(float(max(busy)), 2)
    md = render_markdown(meta, models, results, backends, threads_list, target_rows)
    print(md)
    if args.md:
        write_result(args.md, md)
    if args.json:
        doc = {'meta': meta, 'models': models, 'backends': backends, 'threads': threads_list,
               'results': [dict(model=k[0], backend=k[1], threads=k[2], **v)
                           for k, v in results.items()],
               'ratios': target_rows}
        write_result(args.json, json.dumps(doc, indent=1) + '\n')
    if args.png:
        render_png(args.png, models, results, backends, threads_list, args.input_size)
    return 0


if __name__ == '__main__':
    sys.exit(main())
