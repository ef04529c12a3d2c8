"""Source snapshots: the files of a source directory that a run needs, uploaded once per content.

AzureML's rules: ``.amlignore`` in the directory's root if there is one, else ``.gitignore``
(gitignore syntax); at most 300 MB and 2,000 files."""

import hashlib
import os
import re

from ._errors import UserErrorException
from ._http import decode

_V1 = "/api/kittiwake/v1"
MAX_BYTES = 300 * 1024 * 1024
MAX_FILES = 2000


def _glob_to_regex(pattern):
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape("["))
                i += 1
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        elif pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


class IgnoreRules:
    """gitignore rules read from one file; the last rule that matches a path decides."""

    def __init__(self, lines=()):
        self.rules = []
        for line in lines:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            if not line.endswith("\\ "):
                line = line.rstrip()
            negate = line.startswith("!")
            if negate:
                line = line[1:]
            if line.startswith("\\"):
                line = line[1:]
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            anchored = "/" in line
            body = _glob_to_regex(line.lstrip("/"))
            regex = re.compile(("^" if anchored else "^(?:.*/)?") + body + "$")
            self.rules.append((regex, negate, dir_only))

    @classmethod
    def for_directory(cls, root):
        """The rules of ``.amlignore`` in ``root``, else of ``.gitignore``, else none."""
        for name in (".amlignore", ".gitignore"):
            path = os.path.join(root, name)
            if os.path.isfile(path):
                with open(path, errors="replace") as f:
                    return cls(f.read().splitlines()), name
        return cls(), None

    def ignores(self, rel_path, is_dir):
        ignored = False
        for regex, negate, dir_only in self.rules:
            if dir_only and not is_dir:
                continue
            if regex.match(rel_path):
                ignored = not negate
        return ignored


def list_files(root):
    """``(relative path, absolute path, size, executable)`` of every file to snapshot."""
    if not os.path.isdir(root):
        raise UserErrorException("source_directory %r is not a directory" % root)
    rules, _ = IgnoreRules.for_directory(root)
    out = []
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root).replace(os.sep, "/")
        rel_folder = "" if rel_folder == "." else rel_folder + "/"
        dirs[:] = sorted(d for d in dirs if not rules.ignores(rel_folder + d, True)
                         and not os.path.islink(os.path.join(folder, d)))
        for name in sorted(files):
            rel = rel_folder + name
            full = os.path.join(folder, name)
            if rules.ignores(rel, False) or not os.path.isfile(full):
                continue
            st = os.stat(full)
            out.append((rel, full, st.st_size, bool(st.st_mode & 0o111)))
    return out


def check_limits(files):
    total = sum(f[2] for f in files)
    if len(files) <= MAX_FILES and total <= MAX_BYTES:
        return
    largest = sorted(files, key=lambda f: -f[2])[:5]
    raise UserErrorException(
        "The source directory holds %d files, %.1f MB in all; the limits are %d files and %d MB. "
        "Largest: %s. List what the run does not need in .amlignore (or .gitignore)"
        % (len(files), total / 1048576, MAX_FILES, MAX_BYTES // 1048576,
           ", ".join("%s (%.1f MB)" % (f[0], f[2] / 1048576) for f in largest)))


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def take(session, root):
    """Uploads the files of ``root`` the workspace does not hold yet and returns the snapshot id."""
    files = list_files(root)
    check_limits(files)
    manifest = [{"path": rel, "sha256": _sha256(full), "size": size, "executable": exe}
                for rel, full, size, exe in files]
    hashes = sorted({m["sha256"] for m in manifest})
    missing = set(session.call("POST", _V1 + "/snapshots/missing", {"sha256": hashes})["missing"])
    for entry, (_, full, size, _) in zip(manifest, files):
        if entry["sha256"] not in missing:
            continue
        missing.discard(entry["sha256"])
        with open(full, "rb") as f:
            resp = session.raw("PUT", _V1 + "/snapshots/blobs/" + entry["sha256"], body=f,
                               headers={"Content-Type": "application/octet-stream",
                                        "Content-Length": str(size)})
            decode(resp.status, resp.read())
    return session.call("POST", _V1 + "/snapshots", {"files": manifest})["snapshot_id"]


def restore(session, snapshot_id, path):
    """Writes the files of a snapshot into ``path``."""
    files = session.call("GET", _V1 + "/snapshots/" + snapshot_id)["files"]
    for f in files:
        target = session.download(_V1 + "/snapshots/blobs/" + f["sha256"],
                                  os.path.join(path, *f["path"].split("/")))
        if f.get("executable"):
            os.chmod(target, 0o755)
    return path
