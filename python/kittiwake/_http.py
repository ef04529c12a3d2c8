"""HTTP to the workspace server over persistent connections, with errors as exceptions."""

import http.client
import json
import os
import threading
import urllib.parse

from ._errors import KittiwakeError, UserErrorException

_RETRIABLE = (ConnectionError, http.client.HTTPException, OSError)


class Session:
    """One server, one token; a kept-alive connection per thread."""

    def __init__(self, url, token):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise UserErrorException("Invalid workspace URL %r: expected http(s)://host:port" % url)
        self.url = url.rstrip("/")
        self.token = token
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port
        self._prefix = parsed.path.rstrip("/")
        self._local = threading.local()

    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=300)
            self._local.conn = conn
        return conn

    def _drop_connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def raw(self, method, path, query=None, body=None, headers=None):
        """Sends a request and returns ``(status, headers, response)`` with the body unread."""
        target = self._prefix + path
        if query:
            target += "?" + urllib.parse.urlencode(query, doseq=True)
        hdrs = {"Authorization": "Bearer " + self.token}
        hdrs.update(headers or {})
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, target, body=body, headers=hdrs)
                return conn.getresponse()
            except _RETRIABLE:
                # A kept-alive connection the server closed: reconnect once, unless the body was a
                # stream that is already consumed.
                self._drop_connection()
                if attempt == 2 or (body is not None and not isinstance(body, (bytes, str))):
                    raise
        raise AssertionError("unreachable")

    def call(self, method, path, payload=None, query=None):
        """Sends JSON (or a query) and returns the decoded JSON answer."""
        body = None
        headers = {}
        if payload is not None:
            body = json.dumps(payload, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        try:
            resp = self.raw(method, path, query=query, body=body, headers=headers)
        except _RETRIABLE as e:
            raise KittiwakeError("Cannot reach the workspace at %s: %s" % (self.url, e)) from e
        data = resp.read()
        return decode(resp.status, data)

    def download(self, path, target):
        """Streams the answer to a GET of ``path`` into the file ``target`` (creating its folder)."""
        resp = self.raw("GET", path)
        if resp.status != 200:
            decode(resp.status, resp.read())
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        with open(target, "wb") as out:
            while True:
                block = resp.read(1 << 20)
                if not block:
                    break
                out.write(block)
        return target

    def close(self):
        self._drop_connection()


def decode(status, data):
    """Returns the JSON of a 2xx answer, or raises the server's error as an exception."""
    try:
        doc = json.loads(data) if data else {}
    except ValueError:
        doc = None
    if 200 <= status < 300:
        if doc is None:
            raise KittiwakeError("The server's answer is not JSON", status=status)
        return doc
    code = doc.get("error_code") if isinstance(doc, dict) else None
    message = doc.get("message") if isinstance(doc, dict) else data[:200].decode(errors="replace")
    cls = UserErrorException if 400 <= status < 500 else KittiwakeError
    raise cls("%s (%s %s)" % (message, status, code or ""), status=status, code=code)
