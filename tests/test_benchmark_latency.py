"""hcnet bench-latency (through its scripts/benchmark_latency.py shim): runs end to end and writes valid Markdown / JSON / PNG.

No timing assertions: timings belong in the benchmark's output, not in tests.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'scripts', 'benchmark_latency.py')


from hcnet.bench import latency as bench


def _run(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, SCRIPT] + args, cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=600)


def test_end_to_end_small_case(tmp_path):
    pytest.importorskip('onnxruntime')
    md, js, png = tmp_path / 'out' / 't.md', tmp_path / 't.json', tmp_path / 't.png'
    proc = _run(['--models', 'hc_m5_i10,hc_m15_i0', '--threads', '1', '--runs', '3', '--warmup', '1',
                 '--input-size', '64', '--backends',
                 'mxnet,mxnet-fast,onnxruntime,onnxruntime-fast',
                 '--md', str(md), '--json', str(js), '--png', str(png)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Markdown: the Table 1/3 layout, on stdout and in the file
    text = md.read_text()
    assert text in proc.stdout
    assert '| Config | model | MAdds (M) | Params (M) | #MBBlock | #IdleBlock |' in text
    row = [ln for ln in text.splitlines() if ln.startswith('| Maximum | `hc_m5_i10`')]
    assert len(row) == 1 and row[0].startswith('| Maximum |')
    assert '| 5 | 10 |' in row[0]
    # JSON: every measurement, every sample, thread settings as the worker saw them
    doc = json.loads(js.read_text())
    assert doc['models']['hc_m5_i10']['num_mb'] == 5
    assert doc['models']['hc_m5_i10']['depth'] == 15
    assert {r['backend'] for r in doc['results']} == set(bench.BACKENDS)
    # both models measured in each backend's one (interleaving) subprocess
    assert sorted((r['model'], r['backend']) for r in doc['results']) == sorted(
        (m, b) for m in ('hc_m5_i10', 'hc_m15_i0') for b in bench.BACKENDS)
    assert any(r['what'].startswith('MobileNetV3 Maximum') for r in doc['ratios'])
    for r in doc['results']:
        assert r['threads'] == 1 and len(r['times_ms']) == 3
        assert all(t > 0 for t in r['times_ms'])
        assert r['stats']['p10'] <= r['stats']['median'] <= r['stats']['p90']
        assert r['max_rel_diff'] <= 1e-4
        for rnd in r['rounds']:
            assert rnd['worker_env']['OMP_NUM_THREADS'] == '1'
            assert rnd['worker_env']['MXNET_CPU_WORKER_NTHREADS'] == '1'
    assert doc['meta']['thread_env']['1']['OMP_NUM_THREADS'] == '1'
    # PNG, and no temporary files left behind
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert sorted(os.listdir(tmp_path / 'out')) == ['t.md']
    assert not [f for f in os.listdir(tmp_path) if f.startswith('.')]


def test_bad_arguments_exit_2(tmp_path):
    assert _run(['--models', 'no_such_net', '--runs', '1'], tmp_path).returncode == 2
    assert _run(['--models', 'hc_m5_i10', '--backends', 'tvm'], tmp_path).returncode == 2
    assert _run(['--models', 'hc_m5_i10', '--threads', '0'], tmp_path).returncode == 2
    assert _run(['--models', 'hc_m5_i10', '--mxnet-fast-options', '[1]'],
                tmp_path).returncode == 2
    # deploy options are checked before any measurement: one line naming the option
    for bad, word in (('{"bogus": 1}', 'bogus'), ('{"residual_split": "x"}', 'residual_split')):
        proc = _run(['--models', 'hc_m5_i10', '--backends', 'mxnet-fast',
                     '--mxnet-fast-options', bad], tmp_path)
        assert proc.returncode == 2 and 'Traceback' not in proc.stderr
        assert word in proc.stderr.strip().splitlines()[-1]
    (tmp_path / 'bad.json').write_text('{"meta": {}')
    for path in ('missing.json', 'bad.json'):
        proc = _run(['--replot', path], tmp_path)
        assert proc.returncode == 2 and 'Traceback' not in proc.stderr
        assert path in proc.stderr


def test_thread_env_sets_every_library_before_import():
    env = bench.thread_env(3)
    assert env['OMP_NUM_THREADS'] == env['MKL_NUM_THREADS'] == '3'
    assert env['OPENBLAS_NUM_THREADS'] == env['MXNET_OMP_MAX_THREADS'] == '3'
    assert env['MXNET_CPU_WORKER_NTHREADS'] == '1'


def test_summary_and_ratios():
    s = bench.summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s['median'] == 3.0 and s['min'] == 1.0 and s['n'] == 5
    assert s['p10'] < s['p25'] < s['median'] < s['p75'] < s['p90']
    results = {(m, 'onnxruntime', 1): {'stats': {'median': v}}
               for m, v in (('hc_m15_i0', 10.0), ('hc_m5_i10', 8.0), ('hc_m10_i10', 11.0))}
    models = {'hc_m15_i0': {'standard_madds_m': 200.0}, 'hc_m5_i10': {'standard_madds_m': 140.0},
              'hc_m10_i10': {'standard_madds_m': 210.0}}
    rows = {r['numerator']: r for r in bench.ratios(results, ['onnxruntime'], [1], models)}
    # MAdds ratio 0.7: two thirds of the 30% saving -> latency ratio <= 0.8
    assert rows['hc_m5_i10']['madds_ratio'] == pytest.approx(0.7)
    assert rows['hc_m5_i10']['target'] == pytest.approx(0.8)
    assert rows['hc_m5_i10']['ratio'] == pytest.approx(0.8) and rows['hc_m5_i10']['met']
    models['hc_m5_i10']['standard_madds_m'] = 120.0          # 0.6 -> needs <= 0.733
    rows = {r['numerator']: r for r in bench.ratios(results, ['onnxruntime'], [1], models)}
    assert rows['hc_m5_i10']['met'] is False
    # without MAdds there is no derived target, hence no verdict
    assert bench.ratios(results, ['onnxruntime'], [1])[0]['met'] is None
    assert rows['hc_m10_i10']['ratio'] == pytest.approx(1.1)
    assert rows['hc_m10_i10']['met'] is False
    assert 'hc_effb0_m7_i9' not in rows             # not measured: no row


def test_presets_name_zoo_models():
    import hcnet
    for names in bench.PRESETS.values():
        assert names and all(hcnet.model_zoo.is_model(n) for n in names)
