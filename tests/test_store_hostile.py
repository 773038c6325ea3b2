"""A store that cannot be turned against its user: served on 127.0.0.1 by a server that
misbehaves on purpose. Nothing is written outside the cache, bytes are bounded by the
declared size, every case ends within the configured deadline in one PretrainedError
naming the URL, and no lock or temporary file is left."""
import http.server
import json
import os
import threading
import time

import pytest

from hcnet.model_zoo import PretrainedError
from hcnet.store import fetch

SHA1 = 'ab' * 20
NAME = 'hc_m5_i10'


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):                                 # every loop below is bounded
        server = self.server
        if self.path == '/index.json':
            body = json.dumps(server.index).encode()
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == '/endless.params':          # no length, more than declared
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(2000):
                    self.wfile.write(b'\0' * 65536)
            except OSError:
                pass
        elif self.path == '/huge.params':             # a Content-Length the index contradicts
            self.send_response(200)
            self.send_header('Content-Length', str(10 ** 12))
            self.end_headers()
            try:
                self.wfile.write(b'\0' * 4096)
            except OSError:
                pass
        elif self.path == '/drip.params':             # 1 byte every 0.5 s
            self.send_response(200)
            self.send_header('Content-Length', '1000')
            self.end_headers()
            try:
                for _ in range(40):
                    self.wfile.write(b'\0')
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass
        elif self.path == '/silent.params':           # accepts, never answers
            time.sleep(8)
        else:
            self.send_error(404)


@pytest.fixture
def store(tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    server.daemon_threads = True
    server.index = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    home = tmp_path / 'home'
    monkeypatch.setenv('MXNET_HOME', str(home))
    monkeypatch.setenv('HCNET_REPO_URL', 'http://127.0.0.1:%d/' % server.server_address[1])
    monkeypatch.setattr(fetch, 'DOWNLOAD_TIMEOUT', 1.0)
    monkeypatch.setattr(fetch, 'DOWNLOAD_RETRIES', 1)
    monkeypatch.setattr(fetch, 'RETRY_BACKOFF', 0.1)
    monkeypatch.setattr(fetch, 'DOWNLOAD_DEADLINE', 4.0)
    monkeypatch.setattr(fetch, 'MIN_RATE_GRACE', 1.5)
    fetch.clear_index_cache()
    yield server, home
    server.shutdown()
    server.server_close()
    fetch.clear_index_cache()


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


@pytest.mark.parametrize('remote', ['endless', 'huge', 'drip', 'silent'])
def test_misbehaving_transfers_end_within_the_deadline(store, remote):
    server, home = store
    server.index = {NAME: {'sha1': SHA1, 'file': remote + '.params', 'size': 1000}}
    tic = time.monotonic()
    with pytest.raises(PretrainedError) as err:
        fetch.get_model_file(NAME)
    took = time.monotonic() - tic
    assert took < fetch.DOWNLOAD_DEADLINE + 3, took
    message = str(err.value)
    assert '\n' not in message and remote + '.params' in message
    cache = home / 'models'
    left = [f for f in _files(cache) if not f.startswith('index-')]
    assert left == [], left                             # no partial file, no lock


@pytest.mark.parametrize('index', [
    {'../evil': {'sha1': SHA1}},
    {'/abs/evil': {'sha1': SHA1}},
    {NAME: {'sha1': SHA1, 'file': '../../outside.params'}},
    {NAME: {'sha1': SHA1, 'file': '/etc/passwd'}},
    {NAME: {'sha1': SHA1, 'file': 'file:///etc/passwd'}},
    {NAME: {'sha1': SHA1, 'file': 'http://elsewhere.invalid/x.params'}},
    {NAME: {'sha1': SHA1, 'file': 'sub/dir.params'}},
])
def test_index_entries_that_leave_the_store_are_refused(store, tmp_path, index):
    server, home = store
    server.index = index
    before = _files(tmp_path)
    with pytest.raises(PretrainedError):
        fetch.get_model_file(NAME)
    after = [f for f in _files(tmp_path) if not os.path.basename(f).startswith('index-')]
    assert after == [f for f in before]
    assert '../evil' not in fetch.get_index() and '/abs/evil' not in fetch.get_index()
