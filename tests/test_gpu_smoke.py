"""scripts/gpu_smoke.py, the first thing to run on a GPU machine, works: its dry mode runs
every step on this CPU (float32 / bfloat16 AMP, CPU contexts, horovodrun -np 2 with Gloo)."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_smoke_script_dry_run(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'gpu_smoke.py'),
                           '--dry-run', '--out', str(tmp_path)], capture_output=True, text=True,
                          timeout=1200, env=dict(os.environ, OMP_NUM_THREADS='1'))
    lines = proc.stdout.strip().splitlines()
    steps = 7 if shutil.which('horovodrun') else 5
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert lines[-1].startswith('%d of %d steps passed' % (steps, steps)), lines
    for name in ('float16 (net.cast)', 'float16 (AMP)', 'SIGTERM mid-epoch', 'resume=auto'):
        assert any(l.startswith(name) and ' ok ' in l for l in lines), (name, lines)
    assert os.path.isfile(tmp_path / 'preempt' / 'last.ckpt')
