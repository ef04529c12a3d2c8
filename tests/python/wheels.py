"""Builds tiny wheels for tests, so environment builds need no package index."""

import base64
import hashlib
import os
import zipfile


def build_wheel(folder, name="kwtiny", version="1.0", source="VALUE = 42\n"):
    """Writes ``<name>-<version>-py3-none-any.whl`` (one module, ``<name>``) and returns its path."""
    dist_info = "%s-%s.dist-info" % (name, version)
    files = {
        "%s/__init__.py" % name: source.encode(),
        "%s/METADATA" % dist_info: ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)).encode(),
        "%s/WHEEL" % dist_info: b"Wheel-Version: 1.0\nGenerator: kittiwake-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
    record.append("%s/RECORD,," % dist_info)
    files["%s/RECORD" % dist_info] = ("\n".join(record) + "\n").encode()
    path = os.path.join(str(folder), "%s-%s-py3-none-any.whl" % (name, version))
    with zipfile.ZipFile(path, "w") as z:
        for name_in_zip, data in files.items():
            z.writestr(name_in_zip, data)
    return path
