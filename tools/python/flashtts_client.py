"""A Python client of the flashtts server (client protocol v1, docs/protocol.md).

Needs only pyzmq and msgpack (Debian: python3-zmq, python3-msgpack)::

    from flashtts_client import Client, FlashttsError

    with Client("ipc:///tmp/flashtts.sock") as c:
        print(c.ping())
        r = c.solve("What is 2 + 3?", n=8, on_progress=print)
        print(r["answer"], [s["text"] for s in r["steps"]])

One Client is one ZeroMQ DEALER socket, so many requests can be in flight on
it at once: ``submit()`` sends a request and returns its id, ``wait()`` returns
the result of one id. Frames that arrive for other ids while waiting are kept
until somebody waits for them. A server error raises FlashttsError (with the
protocol's stable ``code``); a request that outlives its timeout is cancelled
on the server and raises TimeoutError.

ZeroMQ connects in the background and succeeds whether or not a server
listens, so the first request is preceded by a ping: with no server at the
endpoint it raises NoServerError ("no flashtts server answers at E (no reply
to ping within 3 s)") after ``connect_timeout`` seconds instead of waiting out
the request's timeout.

Thread contract: a Client (like its ZeroMQ socket) belongs to one thread.
"""

import collections
import time

import msgpack
import zmq

PROTOCOL_VERSION = 1
DEFAULT_ENDPOINT = "ipc:///tmp/flashtts.sock"

DEFAULT_CONNECT_TIMEOUT = 3.0

__all__ = ["Client", "FlashttsError", "NoServerError", "PROTOCOL_VERSION", "DEFAULT_ENDPOINT",
           "DEFAULT_CONNECT_TIMEOUT"]


class FlashttsError(Exception):
    """An error reply from the server.

    Attributes:
        code: the stable error code ("bad_request", "cancelled", ...; the list
            is in docs/protocol.md).
        message: the server's sentence for people.
        request_id: the id of the request it answers (None when the server
            could not read the request's id).
    """

    def __init__(self, code, message, request_id=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class NoServerError(ConnectionError, TimeoutError):
    """No flashtts server answered a ping in time (nothing listens at the endpoint).

    A ConnectionError, and a TimeoutError as an unanswered ping used to be.

    Attributes:
        endpoint: the endpoint pinged.
        timeout: the seconds waited for the pong.
    """

    def __init__(self, endpoint, timeout):
        super().__init__(f"no flashtts server answers at {endpoint} (no reply to ping within {timeout:g} s)")
        self.endpoint = endpoint
        self.timeout = timeout


class Client:
    """A connection to one flashtts server.

    Args:
        endpoint: the server's client endpoint, ``ipc://PATH`` or
            ``tcp://HOST:PORT`` (configs/default.toml, ``[endpoints] clients``).
        timeout: seconds any one call waits for its reply before it cancels
            the request and raises TimeoutError; None waits forever.
        connect_timeout: seconds the first request (or ping()) waits for the
            server's answer to a ping before it raises NoServerError; None
            sends no such ping (the first request then waits its timeout).
        context: a zmq.Context to use; by default the Client makes its own and
            terminates it on close().
    """

    def __init__(self, endpoint=DEFAULT_ENDPOINT, timeout=600.0, context=None,
                 connect_timeout=DEFAULT_CONNECT_TIMEOUT):
        self.endpoint = endpoint
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        # A pong has come: the server is there, no more pings before requests.
        self._server_seen = connect_timeout is None
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._socket = self._context.socket(zmq.DEALER)
        # close() waits this long for unsent frames (a last cancel) to leave.
        self._socket.setsockopt(zmq.LINGER, 500)
        self._socket.connect(endpoint)
        self._next_id = 0
        # id -> frames received for a request in flight and not yet consumed
        # by wait(); the id stays here until its final frame is consumed.
        self._frames = {}
        # ids in _frames that have had at least one frame (so were read by the server).
        self._heard = set()
        # Error replies without an id that could not be matched to a request.
        self.unmatched_errors = []

    # ------------------------------------------------------------ lifecycle

    def close(self):
        """Closes the socket (and the context, when the Client made it)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
            if self._own_context:
                self._context.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ------------------------------------------------------------ low level

    def submit(self, type, request_id=None, **fields):
        """Sends one request and returns its id without waiting.

        ``type`` is the request type ("solve", "generate", "score", "cancel",
        "ping", "stats"); ``fields`` are its fields (docs/protocol.md); a field
        whose value is None is left out, so the server's default applies.
        ``request_id`` (a str of at most 256 bytes or an int) replaces the
        Client's own counter; it must not name a request still in flight.
        The Client's first request waits for a ping's answer first (see
        ``connect_timeout``) and raises NoServerError when none comes.
        """
        if self._socket is None:
            raise ValueError("the client is closed")
        if not self._server_seen:
            self.ping(timeout=self.connect_timeout)
        return self._send(type, request_id, fields)

    def _send(self, type, request_id, fields):
        if request_id is None:
            self._next_id += 1
            request_id = self._next_id
        elif request_id in self._frames:
            raise ValueError(f"request id {request_id!r} is still in flight on this client")
        msg = {"v": PROTOCOL_VERSION, "type": type, "id": request_id}
        msg.update({k: v for k, v in fields.items() if v is not None})
        # ping and cancel are answered at once and are never "in flight" on
        # the server, but their replies come back the same way.
        self._frames.setdefault(request_id, collections.deque())
        self._socket.send(msgpack.packb(msg, use_bin_type=True))
        return request_id

    def wait(self, request_id, on_progress=None, timeout=None):
        """Waits for the final reply of ``request_id`` and returns its result map.

        ``on_progress(event)`` is called with each progress event of the
        request (only streaming requests have them), in order, before this
        returns. Raises FlashttsError for an error reply; raises TimeoutError
        after ``timeout`` seconds (default: the Client's), having cancelled
        the request on the server.
        """
        if request_id not in self._frames:
            raise KeyError(f"no request with id {request_id!r} is waiting for a reply")
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            final = self._consume(request_id, on_progress)
            if final is not None:
                return self._finish(request_id, final)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                self._abandon(request_id)
                raise TimeoutError(
                    f"no reply to request {request_id!r} within {timeout} s; it was cancelled")
            self._receive(left)

    def done(self, request_id):
        """Whether the final reply of ``request_id`` has arrived (never blocks)."""
        while self._receive(0):
            pass
        frames = self._frames.get(request_id)
        return frames is not None and any(f.get("type") != "progress" for f in frames)

    def in_flight(self):
        """The ids submitted whose final reply has not been consumed by wait()."""
        return list(self._frames)

    # ------------------------------------------------------------ requests

    def solve(self, problem, on_progress=None, timeout=None, **params):
        """Solves ``problem`` with a test-time-scaling search; returns the result map.

        ``params`` are the solve fields of docs/protocol.md (n, strategy,
        beam_width, max_steps, max_tokens_per_step, temperature, top_p, top_k,
        seed, aggregation, selection, return_completions, deadline_ms).
        With ``on_progress`` the request streams (stream=True) and each
        progress event ({"kind": "generated" | "completed", ...}) is passed to it.
        """
        if on_progress is not None:
            params.setdefault("stream", True)
        rid = self.submit("solve", problem=problem, **params)
        return self.wait(rid, on_progress=on_progress, timeout=timeout)

    def generate(self, prompt, on_progress=None, timeout=None, **params):
        """Completes ``prompt`` with the policy model; returns the result map.

        ``params``: chat, max_tokens, temperature, top_p, top_k, seed,
        stop_at_step, deadline_ms. With ``on_progress`` the request streams
        and receives {"kind": "text", "beam": 0, "text": <new text>} events.
        """
        if on_progress is not None:
            params.setdefault("stream", True)
        rid = self.submit("generate", prompt=prompt, **params)
        return self.wait(rid, on_progress=on_progress, timeout=timeout)

    def score(self, problem, steps, timeout=None, **params):
        """The PRM's score of each of ``steps`` (a list of str) as a solution of ``problem``.

        Returns the result map; its "scores" has one number per step.
        ``params``: deadline_ms.
        """
        rid = self.submit("score", problem=problem, steps=list(steps), **params)
        return self.wait(rid, timeout=timeout)

    def ping(self, timeout=None):
        """Checks the server is there; returns {"pong": True, "protocol": 1, ...}.

        Waits ``timeout`` seconds (default: ``connect_timeout``, else the
        Client's timeout), then raises NoServerError. A pong that comes later
        is dropped, as any reply to a request given up on.
        """
        if self._socket is None:
            raise ValueError("the client is closed")
        if timeout is None:
            timeout = self.timeout if self.connect_timeout is None else self.connect_timeout
        rid = self._send("ping", None, {})
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            final = self._consume(rid, None)
            if final is not None:
                pong = self._finish(rid, final)
                self._server_seen = True
                return pong
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                # A ping is never in flight on the server: nothing to cancel.
                self._frames.pop(rid, None)
                self._heard.discard(rid)
                raise NoServerError(self.endpoint, timeout)
            self._receive(left)

    def stats(self, timeout=None):
        """Counters of every actor: {"actors": {name: {...}}, "missing": [...]?}."""
        return self.wait(self.submit("stats"), timeout=timeout)

    def cancel(self, request_id, timeout=None):
        """Cancels a request of this Client still in flight.

        Returns {"cancelled": request_id}; the cancelled request's own wait()
        then raises FlashttsError with code "cancelled". Raises FlashttsError
        "not_found" when the server has no such request in flight (it has
        already answered, or never had it).
        """
        return self.wait(self.submit("cancel", target=request_id), timeout=timeout)

    # ------------------------------------------------------------ internals

    def _receive(self, timeout_s):
        """Reads at most one frame into the per-id queues; False when none came in time."""
        ms = None if timeout_s is None else max(0, int(timeout_s * 1000))
        if not self._socket.poll(ms):
            return False
        frame = msgpack.unpackb(self._socket.recv(), raw=False, unicode_errors="replace")
        if not isinstance(frame, dict):
            return True  # not a server frame; nothing to route
        rid = frame.get("id")
        if rid is None:
            self._route_nil_id(frame)
        elif rid in self._frames:
            self._frames[rid].append(frame)
            self._heard.add(rid)
        # else: a reply to a request given up on (timed out): dropped.
        return True

    def _route_nil_id(self, frame):
        """An error the server could not tie to an id (e.g. a message over the size limit).

        Only a request the server has never answered can be the one: when
        exactly one such request is in flight the error is its; otherwise it
        is kept in unmatched_errors (and the request itself times out).
        """
        unheard = [rid for rid in self._frames if rid not in self._heard]
        if frame.get("type") == "error" and len(unheard) == 1:
            self._frames[unheard[0]].append(frame)
            self._heard.add(unheard[0])
        else:
            self.unmatched_errors.append(frame)

    def _consume(self, request_id, on_progress):
        """Delivers queued progress of ``request_id``; returns its final frame if queued."""
        while True:
            frames = self._frames.get(request_id)
            if frames is None:
                # on_progress waited for this very request itself.
                raise KeyError(f"the reply to request {request_id!r} was consumed by another wait()")
            if not frames:
                return None
            f = frames.popleft()
            if f.get("type") != "progress":
                return f
            if on_progress is not None:
                # It may use this Client (e.g. cancel); frames keep arriving
                # into the queue meanwhile.
                on_progress(f.get("event", {}))

    def _finish(self, request_id, frame):
        self._frames.pop(request_id, None)
        self._heard.discard(request_id)
        if frame.get("type") == "error":
            raise FlashttsError(frame.get("code", "?"), frame.get("message", ""), request_id)
        if frame.get("type") != "result":
            raise FlashttsError("bad_message", f"unexpected frame type {frame.get('type')!r}", request_id)
        return frame.get("result", {})

    def _abandon(self, request_id):
        """Stops waiting for ``request_id`` and cancels it on the server (best effort)."""
        self._frames.pop(request_id, None)
        self._heard.discard(request_id)
        self._next_id += 1
        cancel_id = self._next_id
        # Its reply, like any late frame of request_id, is dropped on arrival.
        msg = {"v": PROTOCOL_VERSION, "type": "cancel", "id": cancel_id, "target": request_id}
        self._socket.send(msgpack.packb(msg, use_bin_type=True))
