"""hcnet profile-latency (through its scripts/profile_latency.py shim): splits profiled time by block kind and operator category.

Structure only (which nodes land where), no timing assertions.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'scripts', 'profile_latency.py')


from hcnet.bench import profile as prof


def _run(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, SCRIPT] + args, cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=600)


def test_node_names_map_to_blocks_and_categories():
    import hcnet
    kinds = prof.block_kinds(hcnet.get_model('hc_m5_i10'))
    assert kinds['stage1_block1'] == 'IdleBlock' and kinds['stage2_block1'] == 'MBBlock'
    assert sum(v == 'IdleBlock' for v in kinds.values()) == 10
    assert prof.kind_of('hcnet0_stage2_block2_project_batchnorm0_fwd_nchwc', kinds) == \
        'IdleBlock'
    assert prof.kind_of('stage2_block1_dw_relu0_relu_nchwc', kinds) == 'MBBlock'
    assert prof.kind_of('ReorderOutput_token_241', kinds) == 'reorder (unnamed)'
    assert prof.kind_of('stem_conv0_conv_nchwc', kinds) == 'stem'
    assert prof.ort_category('Conv', {'group': 64, 'kernel_shape': [3, 3]}, 'x_dw') == \
        'conv depthwise'
    assert prof.ort_category('Conv', {'group': 1, 'kernel_shape': [1, 1]}, 'x') == 'conv 1x1'
    assert prof.ort_category('Conv', {'group': 1}, 'stage3_block1_se_reduce') == 'SE'
    assert prof.ort_category('Split', {}, 'x') == 'split/concat/layout'
    assert prof.ort_category('QuickGelu', {}, 'stage2_block1_expand_swish0__mul0') == \
        'activation (unfused)'
    assert prof.ort_category('Mul', {}, 'stage2_block1_se_scale') == 'SE'
    assert prof.mxnet_category('slice_axis') == 'split/concat/layout'
    assert prof.mxnet_category('_sg_mkldnn_conv') == 'conv (all)'


def test_profiles_both_runtimes_end_to_end(tmp_path):
    pytest.importorskip('onnxruntime')
    md, js = tmp_path / 'b.md', tmp_path / 'b.json'
    proc = _run(['--models', 'hc_m5_i10', '--backends', 'onnxruntime,onnxruntime-fast,mxnet',
                 '--input-size', '64', '--runs', '3', '--warmup', '1',
                 '--md', str(md), '--json', str(js)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert md.read_text() in proc.stdout
    results = {r['backend']: r for r in json.loads(js.read_text())}
    assert set(results) == {'onnxruntime', 'onnxruntime-fast', 'mxnet'}
    for r in results.values():
        assert r['blocks'] == {'MBBlock': 5, 'IdleBlock': 10}
        assert sum(ms for _, _, ms in r['table']) > 0
        assert all(ms >= 0 for _, _, ms in r['table'])
    plain = {(k, c) for k, c, _ in results['onnxruntime']['table']}
    fast = {(k, c) for k, c, _ in results['onnxruntime-fast']['table']}
    # the exported Gluon graph splits and concatenates inside IdleBlocks ...
    assert ('IdleBlock', 'split/concat/layout') in plain
    assert ('IdleBlock', 'conv depthwise') in plain and ('MBBlock', 'conv 1x1') in plain
    # ... the deploy graph leaves the idle channels where they are
    assert ('IdleBlock', 'conv 1x1') in fast
    assert '| IdleBlock (10) |' in md.read_text()


def test_bad_arguments_exit_2(tmp_path):
    assert _run(['--models', 'no_such_net'], tmp_path).returncode == 2
    assert _run(['--backends', 'tvm'], tmp_path).returncode == 2
    assert _run(['--threads', '0'], tmp_path).returncode == 2
    # --baseline must be one of the profiled models
    assert _run(['--models', 'hc_m5_i10', '--baseline', 'hc_m15_i0'], tmp_path).returncode == 2


def test_attainable_ratio_rescales_only_the_1x1_time():
    """Model: 3.6 ms of 1x1 + 2.5 ms else at half the baseline's 1x1 MAdds; baseline:
    4 ms of 1x1 + 2 ms else. At the baseline's rate its 1x1 would take 2 ms:
    (2.5 + 2) / 6 = 0.75; the profiled ratio is 6.1 / 6."""
    def result(model, conv, rest, madds, emitted, backend='onnxruntime-fast'):
        return dict(model=model, backend=backend, pointwise_madds=madds,
                    emitted_pointwise_madds=emitted,
                    table=[['MBBlock', 'conv 1x1', conv], ['MBBlock', 'SE', rest]])
    results = [result('base', 4.0, 2.0, 100, 110), result('idle', 3.6, 2.5, 50, 66),
               result('idle', 3.6, 2.5, 50, 66, backend='mxnet')]
    rows = prof.attainable(results, 'base')
    table = [r for r in rows if r.startswith('| `idle`')]
    assert table == ['| `idle` / `base` | onnxruntime-fast | 1.017 | 0.500 (0.600) | 0.900 | '
                     '0.750 |']
    assert prof.attainable(results, 'missing') == []
