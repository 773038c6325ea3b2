"""Distributed training under horovodrun (Gloo, CPU): one engine, Horovod backend."""
import os
import re
import shlex
import signal
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from hcnet.train.backend import check_gloo_hostname
from hcnet.train.checkpoint import load_checkpoint

from conftest import horovod_worker_pids

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'scripts', 'train_imagenet.py')
HOROVODRUN = shutil.which('horovodrun')

pytestmark = pytest.mark.skipif(
    HOROVODRUN is None, reason='Horovod is not installed (bash scripts/install.sh distributed)')

SMALL = ['data.dataset=synthetic', 'data.input_size=32', 'model.classes=10',
         'train.reference_batch=32', 'train.lr=0.05', 'train.warmup_epochs=0.5',
         'train.dtype=float32', 'train.gpus=[]', 'data.num_workers=0', 'checkpoint.every=1']


def horovodrun(np_, args, **kwargs):
    cmd = [HOROVODRUN, '-np', str(np_), '-H', 'localhost:%d' % np_, '--disable-cache', '--gloo',
           sys.executable, TRAIN, '--config', 'hc_m10_i10_dist.yaml'] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)


def test_two_processes_train_and_only_rank0_writes(tmp_path):
    out = str(tmp_path / 'run')
    proc = horovodrun(2, SMALL + ['data.synthetic_samples=256', 'train.batch_size=16',
                                  'train.epochs=2', 'output_dir=%s' % out])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert '2 process(es)' in text
    with open(os.path.join(out, 'metrics.jsonl')) as f:
        assert [line.count('"epoch"') for line in f] == [1, 1]    # one writer, two epochs
    assert text.count('final: epoch 2') == 1
    assert text.count('epoch 1/2  train loss') == 1
    assert sorted(os.listdir(out)) == sorted(
        ['.lock', 'config.yaml', 'train.log', 'metrics.jsonl', 'steps.jsonl', 'curves.png',
         'last.ckpt',
         'best.ckpt', 'epoch0001.ckpt', 'epoch0002.ckpt'])
    assert load_checkpoint(os.path.join(out, 'last.ckpt'))['meta']['epoch'] == 1


def test_node_sharding_on_one_host_splits_the_pass(tmp_path):
    """data.shard=node, the distributed configs' default: the two ranks of one node share a
    pass (each reads half); a config that says rank or none gives 1 or 2 passes."""
    for shard, steps, passes in (('node', 8, 1), ('rank', 8, 1), ('none', 16, 2)):
        out = str(tmp_path / shard)
        proc = horovodrun(2, SMALL + ['data.synthetic_samples=256', 'train.batch_size=16',
                                      'train.epochs=1', 'data.shard=%s' % shard,
                                      'output_dir=%s' % out])
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        text = proc.stdout + proc.stderr
        assert '%d steps/epoch' % steps in text
        assert ('1 epoch = %d passes over the 256 training images (data.shard=%s: 1 node(s) x '
                '2 rank(s)/node; %d steps x 32 images)' % (passes, shard, steps)) in text


def test_fp16_allreduce_trains_close_to_float32(tmp_path):
    """train.fp16_allreduce sends the gradients as float16 (Horovod's Compression.fp16):
    the run trains, close to the float32-allreduce run but not bit-equal to it (the
    compression is really applied)."""
    common = SMALL + ['data.synthetic_samples=192', 'data.shard=rank', 'train.epochs=1',
                      'train.steps_per_epoch=3', 'train.mixup_alpha=0', 'train.batch_size=16',
                      'train.lr=0.005',
                      'model.kwargs={dropout: 0.0, norm_kwargs: {use_global_stats: true}}']
    params = {}
    for flag in ('false', 'true'):
        out = str(tmp_path / flag)
        proc = horovodrun(2, common + ['train.fp16_allreduce=%s' % flag, 'output_dir=%s' % out])
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        params[flag] = load_checkpoint(os.path.join(out, 'last.ckpt'))['params']
    a, b = params['false'], params['true']
    assert any(not np.array_equal(a[n], b[n]) for n in a)
    # float16 keeps 11 bits (and flushes gradients below 6e-8): close as a whole, per
    # element only where the values are not tiny
    diff = np.sqrt(sum(float(np.sum((a[n].astype(np.float64) - b[n]) ** 2)) for n in a))
    norm = np.sqrt(sum(float(np.sum(a[n].astype(np.float64) ** 2)) for n in a))
    assert diff / norm < 1e-4, diff / norm


def test_gradients_are_averaged_across_processes(tmp_path):
    """K steps of 2 processes x batch b == 1 process x batch 2b (same data, no Mixup).

    BatchNorm uses its running statistics (the per-process batch statistics would
    otherwise differ legitimately) and the lr is small, so float rounding is not
    amplified; a run whose gradients were summed instead of averaged (the same as
    doubling the lr) must differ by far more than the tolerance.
    """
    common = SMALL + ['data.synthetic_samples=192', 'data.shard=rank', 'train.epochs=1',
                      'train.steps_per_epoch=3', 'train.mixup_alpha=0', 'train.seed=3',
                      'train.warmup_epochs=0',
                      'model.kwargs={dropout: 0.0, norm_kwargs: {use_global_stats: true}}']
    runs = {}
    for key, args in (('two', None), ('one', ['train.lr=0.005']), ('summed', ['train.lr=0.01'])):
        out = str(tmp_path / key)
        if args is None:
            proc = horovodrun(2, common + ['train.lr=0.005', 'train.batch_size=16',
                                           'output_dir=%s' % out])
        else:
            proc = subprocess.run([sys.executable, TRAIN, '--config', 'hc_m10_i10_dist.yaml']
                                  + common + args + ['train.batch_size=32', 'output_dir=%s' % out],
                                  capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs[key] = load_checkpoint(os.path.join(out, 'last.ckpt'))['params']
    a, b, c = runs['two'], runs['one'], runs['summed']
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert any(not np.allclose(a[n], c[n], rtol=1e-4, atol=1e-6) for n in a)


def test_killing_a_worker_ends_the_job_and_the_checkpoint_resumes(tmp_path):
    out = str(tmp_path / 'run')
    cmd = [HOROVODRUN, '-np', '2', '-H', 'localhost:2', '--disable-cache', '--gloo', sys.executable,
           TRAIN, '--config', 'hc_m10_i10_dist.yaml'] + SMALL + [
        'data.synthetic_samples=256', 'train.batch_size=16', 'train.epochs=50',
        'output_dir=%s' % out]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # rank 0 appends to metrics.jsonl before it writes the epoch's checkpoint: wait for both
    metrics, last = os.path.join(out, 'metrics.jsonl'), os.path.join(out, 'last.ckpt')
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (os.path.isfile(metrics) and open(metrics).read().count('\n') >= 1
                and os.path.isfile(last)):
            break
        time.sleep(0.1)
    assert proc.poll() is None, 'job ended before a worker could be killed'
    victims = horovod_worker_pids(out, 1)
    assert victims, 'rank-1 worker not found'
    os.kill(victims[0], signal.SIGKILL)
    tic = time.time()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail('job still running 60 s after a worker was killed')
    assert proc.returncode != 0
    assert time.time() - tic < 60
    for pid in horovod_worker_pids(out, 0):           # no orphaned rank 0 left behind
        pytest.fail('rank-0 worker %d survived' % pid)
    ckpt = load_checkpoint(last)   # intact
    done = ckpt['meta']['epoch'] + 1
    # one process now: the same total batch (2 x 16) keeps the recipe the state was made by
    resumed = subprocess.run([sys.executable, TRAIN, '--config', 'hc_m10_i10_dist.yaml'] + SMALL
                             + ['data.synthetic_samples=256', 'train.batch_size=32',
                                'train.epochs=%d' % (done + 1), 'output_dir=%s' % out,
                                'resume=auto'], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint(os.path.join(out, 'last.ckpt'))['meta']['epoch'] == done


def test_multi_host_gloo_warns_about_a_host_name_other_hosts_cannot_reach(monkeypatch):
    env = {'HOROVOD_GLOO_RENDEZVOUS_ADDR': '10.213.0.1', 'HOROVOD_CROSS_SIZE': '2'}

    def resolve_to(address):
        monkeypatch.setattr(socket, 'getaddrinfo',
                            lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, '',
                                              (address, 0))])
    resolve_to('127.0.1.1')                   # Debian's /etc/hosts entry for the machine
    assert 'loopback address 127.0.1.1' in check_gloo_hostname(env)
    assert check_gloo_hostname(dict(env, HOROVOD_CROSS_SIZE='1')) is None    # one host
    assert check_gloo_hostname({}) is None                                    # not Gloo
    resolve_to('10.213.0.2')
    assert check_gloo_hostname(env) is None

    def unknown(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
    monkeypatch.setattr(socket, 'getaddrinfo', unknown)
    assert 'does not resolve' in check_gloo_hostname(env)


# ----------------------------------------------------------------------------- two hosts
# Two "hosts" on this machine: a network namespace each (joined by a veth pair), each with
# its own hostname (UTS namespace), /etc/hosts and sshd; horovodrun is started on host A.
#
# Horovod 0.28's Gloo takes the address of a rank from two places: HOROVOD_GLOO_IFACE
# (= --network-interfaces) for its first rendezvous, but for the process-set contexts that
# carry every collective it binds to whatever the machine's hostname resolves to
# (GlooContext::InitializeForProcessSet creates its device without the interface). Each
# host's hostname must therefore resolve, on that host, to its own address on the shared
# network: a name that does not resolve aborts the rank ("Unable to find address for:
# <hostname>"), one that resolves to a loopback address makes the other rank connect to
# itself ("connect [127.0.0.1]:...: Connection refused"). The fixture checks exactly this
# before training starts.
SSH_PORT = 2222
HOST_IPS = ('10.213.0.1', '10.213.0.2')    # private to the two namespaces
_AS_HOST = ('import os, socket, sys; socket.sethostname(sys.argv[1]); '
            'os.execvp(sys.argv[2], sys.argv[2:])')


def _sshd():
    path = os.environ.get('PATH', '') + ':/usr/sbin:/usr/local/sbin:/sbin'
    return shutil.which('sshd', path=path)


def _netns_unavailable():
    """Why two namespace hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return 'needs root to create network namespaces'
    missing = [tool for tool in ('ip', 'unshare', 'ssh', 'ssh-keygen') if not shutil.which(tool)]
    if not _sshd():
        missing.append('sshd')
    if missing:
        return 'needs %s (iproute2, util-linux, openssh-client, openssh-server)' % (
            ', '.join(missing))
    probe = 'hcnet-probe-%d' % os.getpid()
    proc = subprocess.run(['ip', 'netns', 'add', probe], capture_output=True, text=True)
    if proc.returncode != 0:
        return '`ip netns add` is not permitted here (%s)' % proc.stderr.strip()
    try:
        proc = subprocess.run(['ip', 'netns', 'exec', probe, 'unshare', '--uts', 'true'],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return '`ip netns exec ... unshare --uts` is not permitted here (%s)' % (
                proc.stderr.strip())
    finally:
        subprocess.run(['ip', 'netns', 'del', probe], capture_output=True)
    return None


def _on_host(host, *cmd):
    """``cmd`` as run on ``host``: in its network namespace, under its own hostname."""
    return ['ip', 'netns', 'exec', host, 'unshare', '--uts', sys.executable, '-c', _AS_HOST,
            host] + list(cmd)


def _sh(*cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, '%s: %s' % (' '.join(cmd), proc.stderr)
    return proc.stdout


def _host_names(tag):
    return ['hcnet-%s-a' % tag, 'hcnet-%s-b' % tag]


def _remove_hosts(tag):
    """Delete the hosts of pytest process ``tag``: every process in them, namespaces, files."""
    for ns in _host_names(tag):
        pids = subprocess.run(['ip', 'netns', 'pids', ns], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(['ip', 'netns', 'del', ns], capture_output=True)
        shutil.rmtree('/etc/netns/%s' % ns, ignore_errors=True)


def _remove_stale_hosts():
    """Hosts left behind by killed test runs (their pytest process is gone)."""
    names = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout.split()
    names += os.listdir('/etc/netns') if os.path.isdir('/etc/netns') else []
    for tag in {int(m.group(1)) for m in map(re.compile(r'hcnet-(\d+)-[ab]$').match, names) if m}:
        try:
            os.kill(tag, 0)
        except ProcessLookupError:
            _remove_hosts(tag)


@pytest.fixture
def two_hosts(tmp_path, capsys):
    """Two hosts in network namespaces joined by a veth pair, each running sshd (key login).

    Yields ``([host_a, host_b], ssh key, [ip_a, ip_b])``; the network interface is ``hvd0``
    on both.
    """
    reason = _netns_unavailable()
    if reason:
        with capsys.disabled():
            print('\nmulti-host test skipped: %s' % reason)
        pytest.skip(reason)
    _remove_stale_hosts()
    tag = os.getpid()
    _remove_hosts(tag)
    names = _host_names(tag)
    key = str(tmp_path / 'id_ed25519')
    _sh('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key)
    _sh('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(tmp_path / 'host_key'))
    shutil.copy(key + '.pub', str(tmp_path / 'authorized_keys'))
    os.makedirs('/run/sshd', mode=0o755, exist_ok=True)
    try:
        for ns in names:
            _sh('ip', 'netns', 'add', ns)
        # the veth ends are created inside the namespaces: no name is taken in the host's
        _sh('ip', 'link', 'add', 'hvd0', 'netns', names[0], 'type', 'veth',
            'peer', 'name', 'hvd0', 'netns', names[1])
        for ns, ip in zip(names, HOST_IPS):
            _sh('ip', '-n', ns, 'addr', 'add', ip + '/24', 'dev', 'hvd0')
            _sh('ip', '-n', ns, 'link', 'set', 'hvd0', 'up')
            _sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
            # `ip netns exec` bind-mounts these over /etc: the host's own name resolves to its
            # address; ssh keeps the throw-away host keys out of ~/.ssh/known_hosts
            etc = '/etc/netns/%s' % ns
            os.makedirs(etc + '/ssh', exist_ok=True)
            with open(etc + '/hosts', 'w') as f:
                f.write('127.0.0.1 localhost\n'
                        + ''.join('%s %s\n' % (i, n) for n, i in zip(names, HOST_IPS)))
            with open(etc + '/ssh/ssh_config', 'w') as f:
                f.write('Host *\n  UserKnownHostsFile /dev/null\n  GlobalKnownHostsFile /dev/null\n'
                        '  StrictHostKeyChecking no\n  LogLevel ERROR\n  BatchMode yes\n'
                        '  ConnectTimeout 10\n')
            conf = tmp_path / ('sshd_%s.conf' % ns)
            pid_file = tmp_path / ('sshd_%s.pid' % ns)
            conf.write_text(
                'Port %d\nListenAddress %s\nHostKey %s\nAuthorizedKeysFile %s\nPidFile %s\n'
                'PermitRootLogin prohibit-password\nPasswordAuthentication no\n'
                'KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nUseDNS no\n'
                'PrintMotd no\n' % (SSH_PORT, ip, tmp_path / 'host_key',
                                    tmp_path / 'authorized_keys', pid_file))
            log = tmp_path / ('sshd_%s.log' % ns)
            _sh(*_on_host(ns, _sshd(), '-f', str(conf), '-E', str(log)))
            deadline = time.time() + 20       # the pid file is written once sshd listens
            while not pid_file.exists():
                assert time.time() < deadline, 'sshd on %s did not start: %s' % (
                    ns, log.read_text() if log.exists() else '(no log)')
                time.sleep(0.05)
        # key login from host A to both hosts, and what Gloo needs: on each host, its
        # hostname resolves to its own address
        check = 'import socket; n = socket.gethostname(); print(n, socket.gethostbyname(n))'
        for ns, ip in zip(names, HOST_IPS):
            cmd = _on_host(names[0], 'ssh', '-p', str(SSH_PORT), '-i', key, ns,
                           '%s -c %s' % (sys.executable, shlex.quote(check)))
            for _ in range(10):
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
                if proc.returncode == 0:
                    break
                time.sleep(0.5)
            assert proc.returncode == 0, 'ssh %s failed: %s\nsshd log: %s' % (
                ns, proc.stderr, (tmp_path / ('sshd_%s.log' % ns)).read_text())
            assert proc.stdout.split() == [ns, ip], proc.stdout
        yield names, key, list(HOST_IPS)
    finally:
        _remove_hosts(tag)


def test_training_across_two_hosts(two_hosts, tmp_path):
    """horovodrun on host A, one rank per host, ssh to B; Gloo over the veth pair."""
    (host_a, host_b), key, ips = two_hosts
    out = str(tmp_path / 'run')
    cmd = _on_host(host_a, HOROVODRUN, '-np', '2', '-H', '%s:1,%s:1' % (host_a, host_b),
                   '--network-interfaces', 'hvd0', '--ssh-port', str(SSH_PORT),
                   '--ssh-identity-file', key, '--disable-cache', '--gloo', sys.executable,
                   TRAIN, '--config', 'hc_m10_i10_dist.yaml') + SMALL + [
        'data.synthetic_samples=128', 'train.batch_size=16', 'train.epochs=1',
        'output_dir=%s' % out]
    env = dict(os.environ, HOROVOD_LOG_LEVEL='debug')     # logs the address of every Gloo context
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert '2 process(es)' in text and text.count('final: epoch 1') == 1
    assert 'Gloo binds its collectives' not in text        # check_gloo_hostname was content
    # rank 0 on host A, rank 1 on host B, every Gloo context bound to the veth addresses
    bound = set(re.findall(
        r'rendezvous started for rank=\d+, size=\d+, dev=\{[^}]*addr=\[([^\]]+)\]', text))
    assert bound == set(ips), bound
    assert load_checkpoint(os.path.join(out, 'last.ckpt'))['meta']['epoch'] == 0
    # data.shard=node (the distributed configs): one rank per node, so each rank passes
    # over all 128 images (8 steps of 16), and the job over them twice
    assert ('1 epoch = 2 passes over the 128 training images (data.shard=node: 2 node(s) x '
            '1 rank(s)/node; 8 steps x 32 images)') in text, text[-3000:]
