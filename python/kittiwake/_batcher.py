"""Delivers logged metrics in the background so that logging never waits on the network.

Calls append to in-memory columns under a lock; a worker thread sends them in batches every
``interval`` seconds or as soon as ``max_pending`` values wait. A failed send is retried with
back-off; if it keeps failing the values stay queued and the error is raised by the next logging
call, by ``flush()``/``complete()``, or at interpreter exit. Nothing logged is dropped silently.
"""

import atexit
import json
import math
import threading
import time
import weakref

from ._errors import KittiwakeError, LoggingError
from ._http import decode

_live = weakref.WeakSet()


def _flush_all_at_exit():
    failures = []
    for batcher in list(_live):
        try:
            batcher.close()
        except LoggingError as e:
            failures.append(str(e))
    if failures:
        raise LoggingError("Kittiwake could not deliver logged metrics before exit: " + "; ".join(failures))


atexit.register(_flush_all_at_exit)

_SPECIALS = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _json_floats(values):
    """JSON has no NaN or infinity: send those as the strings the server reads."""
    if all(map(math.isfinite, values)):
        return values
    return [v if math.isfinite(v) else ("NaN" if v != v else _SPECIALS[v]) for v in values]


class Batcher:
    def __init__(self, session, run_id, interval=1.0, max_pending=100_000, retries=4):
        self._session = session
        self._path = "/api/kittiwake/v1/runs/%s/metrics" % run_id
        self._interval = interval
        self._max_pending = max_pending
        self._retries = retries
        self._lock = threading.Lock()
        self._sending = threading.Lock()
        self._wake = threading.Event()
        self._scalars = {}
        self._rich = []
        self._pending = 0
        self._error = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="kittiwake-metrics", daemon=True)
        self._thread.start()
        _live.add(self)

    def scalar(self, name, value, step, timestamp):
        if self._error is not None:
            self._raise()
        with self._lock:
            cols = self._scalars.get(name)
            if cols is None:
                cols = self._scalars[name] = ([], [], [])
            cols[0].append(value)
            cols[1].append(step)
            cols[2].append(timestamp)
            self._pending += 1
            if self._pending >= self._max_pending:
                self._wake.set()

    def rich(self, name, kind, value, description, timestamp):
        if self._error is not None:
            self._raise()
        with self._lock:
            self._rich.append({"name": name, "kind": kind, "value": value,
                               "description": description or "", "timestamp": timestamp})
            self._pending += 1

    def _raise(self):
        error, self._error = self._error, None
        raise error

    def _take(self):
        with self._lock:
            scalars, rich = self._scalars, self._rich
            self._scalars, self._rich, self._pending = {}, [], 0
        return scalars, rich

    def _put_back(self, scalars, rich):
        """Returns unsent values to the front of the queue, ahead of anything logged since."""
        with self._lock:
            for name, (values, steps, stamps) in self._scalars.items():
                cols = scalars.setdefault(name, ([], [], []))
                cols[0].extend(values)
                cols[1].extend(steps)
                cols[2].extend(stamps)
            self._scalars = scalars
            self._rich = rich + self._rich
            self._pending = sum(len(c[0]) for c in scalars.values()) + len(self._rich)

    def _send(self):
        """Sends everything queued; on failure requeues it and raises."""
        with self._sending:
            scalars, rich = self._take()
            if not scalars and not rich:
                return
            body = json.dumps({
                "scalars": [{"name": n, "values": _json_floats(c[0]), "steps": c[1], "timestamps": c[2]}
                            for n, c in scalars.items()],
                "rich": rich,
            }).encode()
            delay = 0.25
            for attempt in range(self._retries + 1):
                try:
                    resp = self._session.raw("POST", self._path, body=body,
                                             headers={"Content-Type": "application/json"})
                    decode(resp.status, resp.read())
                    return
                except KittiwakeError as e:
                    if e.status is not None and 400 <= e.status < 500:
                        # The server refused these values; resending cannot help.
                        raise LoggingError("The server refused logged metrics: %s" % e.message) from e
                    last = e
                except OSError as e:
                    self._session._drop_connection()
                    last = e
                if attempt < self._retries:
                    time.sleep(delay)
                    delay *= 2
            unsent = sum(len(c[0]) for c in scalars.values()) + len(rich)
            self._put_back(scalars, rich)
            raise LoggingError("Could not deliver %d logged values: %s" % (unsent, last), unsent=unsent)

    def _loop(self):
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._send()
            except LoggingError as e:
                self._error = e

    def flush(self):
        """Sends everything logged so far and raises if it cannot."""
        if self._error is not None:
            self._raise()
        self._send()

    def close(self):
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        _live.discard(self)
        self.flush()
