"""Local object-storage servers for tests and benchmarks: moto's S3 server (from the machine's
python3) and Azurite's Azure Blob server (installed by scripts/test-all from npm)."""

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


# Azurite's well-known development account (public, in Azure's documentation).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def start_azurite(containers=()):
    """Starts Azurite's blob server with ``containers`` created; returns ``(process, endpoint)``."""
    import os
    from azure.storage.blob import BlobServiceClient
    program = os.environ.get("AZURITE_BLOB")
    if not program or not os.path.exists(program):
        raise RuntimeError("AZURITE_BLOB does not name azurite-blob; scripts/test-all installs it")
    port = free_port()
    proc = subprocess.Popen([program, "--blobHost", "127.0.0.1", "--blobPort", str(port),
                             "--inMemoryPersistence", "--skipApiVersionCheck", "--silent"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = "http://127.0.0.1:%d/%s" % (port, AZURITE_ACCOUNT)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                proc.kill()
                raise RuntimeError("Azurite did not start")
            time.sleep(0.1)
    client = BlobServiceClient.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;"
        % (AZURITE_ACCOUNT, AZURITE_KEY, endpoint))
    for container in containers:
        client.create_container(container)
    return proc, endpoint
