"""``goalrl serve``: a local web page to command the simulated arm with goal images.

Standard library only (``http.server``): the page is static HTML + JS shipped in
``static/``, with no CDN. Endpoints (JSON unless noted; errors are ``{"error": message}``
with a 4xx status, and the server keeps serving):

    GET  /                       the page
    GET  /api/status             scene, checkpoint, busy, the running/last command, frame seq
    GET  /api/frame.jpg?after=N  live camera (JPEG); waits up to 2 s for a frame newer than N
    GET  /api/goals              the gallery
    POST /api/goals              upload a goal image (raw bytes as the body; X-Goal-Name header)
    POST /api/capture            {"seed": n}: capture the goal of episode n from the scene
    POST /api/command            {"goal": id}: start moving (202); 409 while one runs
    POST /api/stop               stop the running command after its current step
    POST /api/reset              {"seed": n | null}: a fresh episode start; 409 while moving
    POST /api/checkpoint         {"path": p}: swap to another checkpoint of the same scene
    GET  /files/<path>           files the server wrote (videos, goals), confined to ``out``

Writes happen only under ``out`` (goals/, runs/). Uploads are bounded by bytes (checked on
Content-Length, before reading) and by pixels (checked on the image header, before
decoding); grayscale images are refused on the header and see-through ones right after
decoding, before any conversion, and at most ``max_decodes`` uploads are decoded at once.
Request heads are gathered by one thread for all connections; a head not complete
``timeout_s`` after connecting is dropped, so half-sent requests hold no thread. Complete
requests are served by a pool of ``max_threads`` threads (more wait in a queue; past
``max_queued`` they get a 503); the listen backlog is 128 (the standard library's 5 reset
connections under 50 parallel uploads); see ``connections.py``. ``/api/checkpoint``
loads only from ``checkpoint_roots`` and answers one error for paths outside them and
missing paths alike. Requests with a foreign Host (DNS rebinding) or Origin (cross-site
POST) get 403. Load figures: docs/benchmarks/command.md (``bench/command.py load``).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from goalrl.checkpoint import CheckpointError
from goalrl.goal_image import (
    Goal,
    GoalImageError,
    ImageTooLargeError,
    NotAnImageError,
    load_goal_converted,
)
from goalrl.goal_match import GoalMismatchError, check_goal_can_match
from goalrl.reacher import SceneMismatchError, check_goal_fits
from goalrl.serve.connections import GatedRequestHandler, PooledHTTPServer
from goalrl.serve.worker import ArmWorker, Busy

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {  # the only files served from the package
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
FILE_TYPES = {  # what /files/ serves from ``out``, by suffix
    ".png": "image/png",
    ".webm": "video/webm",
    ".mp4": "video/mp4",
    ".gif": "image/gif",
    ".json": "application/json",
}
MAX_JSON_BYTES = 64 * 1024
MAX_DISCARD_BYTES = 64 * 1024 * 1024  # refused bodies up to this size are read and dropped
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Limits:
    max_upload_bytes: int = 5_000_000  # request body of an upload
    max_upload_pixels: int = 16_000_000  # width * height of an uploaded image
    view_size: int = 256  # side of the live camera JPEG (nearest-neighbour upscale)
    max_threads: int = 32  # connections served at once; more wait in the queue
    max_queued: int = 256  # complete requests waiting for a thread; past this: 503, closed
    max_decodes: int = 2  # uploads decoded at once (each up to max_upload_pixels * 4 bytes)
    # a request head must be complete this long after connecting; a body or the next request
    # on a kept-alive connection may pause this long between reads
    timeout_s: float = 10.0
    checkpoint_roots: tuple[str, ...] = ()  # folders /api/checkpoint may load from


class GoalServer(PooledHTTPServer):
    """HTTP server holding the worker, the output folder and the limits."""

    def __init__(
        self, address: tuple[str, int], worker: ArmWorker, out: Path, limits: Limits
    ) -> None:
        super().__init__(
            address,
            Handler,
            max_threads=limits.max_threads,
            max_queued=limits.max_queued,
            timeout_s=limits.timeout_s,
        )
        self.worker = worker
        self.out = out.resolve()
        self.limits = limits
        self.checkpoint_roots = [Path(r).expanduser().resolve() for r in limits.checkpoint_roots]
        self.loopback = address[0] in LOOPBACK_NAMES
        self._jpeg_lock = threading.Lock()
        self._jpeg: tuple[int, bytes] = (-1, b"")
        self.quiet = True
        self.decode_slots = threading.BoundedSemaphore(limits.max_decodes)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"

    def jpeg(self, seq: int, frame: np.ndarray) -> bytes:
        """The camera frame as JPEG, encoded once per frame whatever the number of viewers."""
        with self._jpeg_lock:
            if self._jpeg[0] == seq:
                return self._jpeg[1]
        size = self.limits.view_size
        big = cv2.resize(frame, (size, size), interpolation=cv2.INTER_NEAREST)
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        if not ok:
            raise HTTPError(500, "could not encode the camera frame")
        data = buf.tobytes()
        with self._jpeg_lock:
            self._jpeg = (seq, data)
        return data

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.worker.close()


class Handler(GatedRequestHandler):
    server: GoalServer
    server_version = "goalrl"
    protocol_version = "HTTP/1.1"  # keep-alive: the page polls frames and status

    # ---- plumbing -------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if not self.server.quiet:
            super().log_message(format, *args)

    def send_bytes(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, data: Any) -> None:
        self.send_bytes(status, json.dumps(data).encode(), "application/json")

    def dispatch(self, routes: dict[str, Any]) -> None:
        try:
            self.check_host()
            path = urllib.parse.urlsplit(self.path).path
            if path.startswith("/files/"):
                handler = routes.get("/files/")
            elif path.startswith("/static/"):
                handler = routes.get("/static/")
            else:
                handler = routes.get(path)
            if handler is None:
                raise HTTPError(404, f"no such endpoint: {self.command} {path}")
            handler()
        except HTTPError as err:
            if err.status >= 400 and self.command == "POST" and not self._body_read:
                self.close_connection = True  # the unread body must not become the next request
            self.send_json(err.status, {"error": err.message})
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left or went silent mid-request
        except Exception as err:  # a bug must not take the server down
            self.close_connection = True
            self.send_json(500, {"error": f"internal error: {type(err).__name__}: {err}"})

    def check_host(self) -> None:
        """403 for a Host that is not this machine (DNS rebinding) when bound to loopback."""
        if not self.server.loopback:
            return
        host = self.headers.get("Host", "")
        name = urllib.parse.urlsplit(f"//{host}").hostname or ""
        if name not in LOOPBACK_NAMES:
            raise HTTPError(403, f"Host {host!r} is not this machine; open {self.server.url}")

    def check_origin(self) -> None:
        """403 for a POST sent by a page of another origin (a cross-site form or script)."""
        origin = self.headers.get("Origin")
        if origin is None:  # not sent by browsers for same-origin GETs; scripts and curl
            return
        if urllib.parse.urlsplit(origin).netloc != self.headers.get("Host", ""):
            raise HTTPError(403, f"requests from {origin} are not accepted; use {self.server.url}")

    def content_length(self, limit: int, what: str) -> int:
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            raise HTTPError(411, "send the body with a Content-Length (no chunked encoding)")
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise HTTPError(411, "a Content-Length header is required")
        try:
            length = int(raw)
        except ValueError as err:
            raise HTTPError(400, f"Content-Length {raw!r} is not a number") from err
        if length < 0:
            raise HTTPError(400, "Content-Length is negative")
        if length > limit:
            self.discard_body(length)
            raise HTTPError(413, f"{what} is {length:,} bytes; the limit is {limit:,} bytes")
        return length

    def discard_body(self, length: int) -> None:
        """Read and drop a refused body (up to 64 MiB), so the client gets to read our answer
        instead of a connection reset; nothing of it is kept."""
        if length > MAX_DISCARD_BYTES:
            return  # dispatch closes the connection
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        self._body_read = remaining == 0

    def handle_expect_100(self) -> bool:
        """Refuse an oversized upload before the client sends it (``Expect: 100-continue``)."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = 0
        limit = self.server.limits.max_upload_bytes
        if length > limit:
            self.close_connection = True
            body = {"error": f"the upload is {length:,} bytes; the limit is {limit:,} bytes"}
            self.send_json(413, body)
            return False
        return super().handle_expect_100()

    def read_body(self, limit: int, what: str) -> bytes:
        length = self.content_length(limit, what)
        body = self.rfile.read(length)
        self._body_read = True
        if len(body) != length:
            raise HTTPError(400, f"the body ended after {len(body)} of {length} bytes")
        return body

    def read_json(self) -> dict[str, Any]:
        body = self.read_body(MAX_JSON_BYTES, "the request body")
        if not body:
            return {}
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise HTTPError(400, f"the body is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise HTTPError(400, "the body must be a JSON object")
        return data

    # ---- methods --------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        self._body_read = True
        self.dispatch(
            {
                "/": lambda: self.static("index.html"),
                "/index.html": lambda: self.static("index.html"),
                "/static/": self.static_path,
                "/favicon.ico": lambda: self.send_bytes(204, b"", "image/x-icon"),
                "/api/status": lambda: self.send_json(200, self.server.worker.status()),
                "/api/goals": lambda: self.send_json(
                    200, {"goals": self.server.worker.gallery.list()}
                ),
                "/api/frame.jpg": self.frame,
                "/files/": self.files,
            }
        )

    do_HEAD = do_GET  # noqa: N815

    def do_POST(self) -> None:  # noqa: N802
        self._body_read = False

        def guarded(fn: Any) -> Any:
            def run() -> None:
                self.check_origin()
                fn()

            return run

        self.dispatch(
            {
                "/api/goals": guarded(self.upload),
                "/api/capture": guarded(self.capture),
                "/api/command": guarded(self.start_command),
                "/api/stop": guarded(self.stop),
                "/api/reset": guarded(self.reset),
                "/api/checkpoint": guarded(self.checkpoint),
            }
        )

    # ---- GET handlers ---------------------------------------------------------------------
    def static(self, name: str) -> None:
        self.send_bytes(200, (STATIC / name).read_bytes(), STATIC_FILES[name])

    def static_path(self) -> None:
        name = urllib.parse.urlsplit(self.path).path[len("/static/") :]
        if name not in STATIC_FILES:
            raise HTTPError(404, f"no static file {name!r}")
        self.static(name)

    def frame(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        try:
            after = int(query.get("after", ["-1"])[0])
        except ValueError as err:
            raise HTTPError(400, "after must be an integer frame number") from err
        seq, frame = self.server.worker.wait_frame(after, timeout=2.0)
        if frame is None:
            raise HTTPError(503, "no camera frame yet")
        self.send_bytes(200, self.server.jpeg(seq, frame), "image/jpeg", X_Frame_Seq=str(seq))

    def files(self) -> None:
        """A file under ``out``; anything resolving outside it (``..``, links) is refused."""
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path[len("/files/") :])
        if "\x00" in rel or not rel:
            raise HTTPError(400, "bad file path")
        root = self.server.out
        target = (root / rel).resolve()
        if not target.is_relative_to(root):
            raise HTTPError(403, f"{rel!r} is outside the server's output folder")
        if not target.is_file():
            raise HTTPError(404, f"no file {rel!r} in the server's output folder")
        kind = FILE_TYPES.get(target.suffix.lower())
        if kind is None:
            raise HTTPError(403, f"files of type {target.suffix!r} are not served")
        self.send_bytes(200, target.read_bytes(), kind)

    # ---- POST handlers --------------------------------------------------------------------
    def upload(self) -> None:
        limits = self.server.limits
        body = self.read_body(limits.max_upload_bytes, "the upload")
        name = urllib.parse.unquote(self.headers.get("X-Goal-Name", "")) or "the upload"
        name = "".join(ch for ch in name if ch.isprintable())[:80]
        with self.server.decode_slots:  # bounded decode memory, however many upload at once
            goal = decode_upload(body, name, self.server.worker, limits.max_upload_pixels)
        item = self.server.worker.gallery.add(goal, name)
        self.send_json(201, {"goal": item.public()})

    def capture(self) -> None:
        data = self.read_json()
        seed = data.get("seed")
        if seed is None:
            seed = self.server.worker.status().get("seed")
        if seed is None:
            raise HTTPError(400, 'give {"seed": n}: the scene has moved since its last reset')
        if not is_seed(seed):
            raise HTTPError(400, f"seed must be an integer in [0, 2**32), got {seed!r}")
        self.send_json(201, {"goal": self.server.worker.capture(seed).public()})

    def start_command(self) -> None:
        goal_id = self.read_json().get("goal")
        if not isinstance(goal_id, str):
            raise HTTPError(400, 'give {"goal": "<id>"} with the id of a gallery goal')
        try:
            job = self.server.worker.command(goal_id)
        except KeyError as err:
            raise HTTPError(404, str(err.args[0])) from err
        except Busy as err:
            raise HTTPError(409, str(err)) from err
        self.send_json(202, {"job": job})

    def stop(self) -> None:
        self.read_json()
        self.send_json(200, {"stopping": self.server.worker.stop()})

    def reset(self) -> None:
        seed = self.read_json().get("seed")
        if seed is not None and not is_seed(seed):
            raise HTTPError(400, f"seed must be an integer in [0, 2**32) or null, got {seed!r}")
        try:
            self.send_json(200, self.server.worker.reset(seed))
        except Busy as err:
            raise HTTPError(409, str(err)) from err

    def checkpoint(self) -> None:
        path = self.read_json().get("path")
        if not isinstance(path, str) or not path.strip() or "\x00" in path:
            raise HTTPError(400, 'give {"path": "<checkpoint folder>"}')
        target = Path(path.strip()).expanduser().resolve()
        roots = self.server.checkpoint_roots
        # one answer for a missing path and a path outside the roots: the page must not tell
        # which files exist elsewhere on the machine
        if not (any(target.is_relative_to(root) for root in roots) and target.exists()):
            where = ", ".join(str(root) for root in roots) or "(none configured)"
            raise HTTPError(
                404, f"no checkpoint {path.strip()!r} in the folders it loads from: {where}"
            )
        try:
            info = self.server.worker.load_checkpoint(str(target))
        except Busy as err:
            raise HTTPError(409, str(err)) from err
        except (CheckpointError, SceneMismatchError) as err:
            raise HTTPError(422, str(err)) from err
        self.send_json(200, info)


def is_seed(value: Any) -> bool:
    """An env seed from JSON: an int in [0, 2**32), not a bool (a subclass of int)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


def decode_upload(body: bytes, name: str, worker: ArmWorker, max_pixels: int) -> Goal:
    """Uploaded bytes as a goal of this scene, or HTTPError 413/415/422 saying why not.

    The rule is ``goal_match.check_goal_can_match``, as for ``goalrl command`` and the
    Python API (the page has no force): grayscale, see-through and far-from-the-view
    pictures are refused. An RGBA image whose pixels are all opaque is accepted.
    """
    if not body:
        raise HTTPError(400, "the upload is empty")
    info = worker.info
    try:
        goal, conv = load_goal_converted(
            body,
            int(info["image_size"]),
            max_pixels=max_pixels,
            name=name,
            refuse_unmatchable=True,  # gray by the header, see-through before converting
        )
        check_goal_fits(goal, info["env"], info.get("objects", []))
        view = worker.wait_frame(-1, timeout=0.0)[1]  # (S, S, 3) the camera view now
        check_goal_can_match(goal, conv, view, name)  # the rule of `goalrl command` and the API
    except ImageTooLargeError as err:
        raise HTTPError(413, str(err)) from err
    except NotAnImageError as err:
        raise HTTPError(415, str(err)) from err
    except (GoalImageError, GoalMismatchError, SceneMismatchError) as err:
        raise HTTPError(422, str(err)) from err
    return goal


def make_server(
    worker: ArmWorker, out: Path, host: str = "127.0.0.1", port: int = 8765, **limits: Any
) -> GoalServer:
    try:
        return GoalServer((host, port), worker, out, Limits(**limits))
    except OSError as err:
        raise OSError(
            f"cannot listen on {host}:{port} ({err.strerror or err}); pass port=<another> "
            "or port=0 for any free port"
        ) from err
