"""A local S3-compatible server for tests and benchmarks: moto's, from the machine's python3."""

import socket
import subprocess
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(buckets=()):
    """Starts moto's S3 server with ``buckets`` created; returns ``(process, url)``."""
    port = free_port()
    proc = subprocess.Popen(["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            break
        except OSError:
            if time.time() > deadline:
                proc.kill()
                raise RuntimeError("moto's S3 server did not start")
            time.sleep(0.1)
    for bucket in buckets:
        urllib.request.urlopen(urllib.request.Request("%s/%s" % (url, bucket), method="PUT")).read()
    return proc, url
