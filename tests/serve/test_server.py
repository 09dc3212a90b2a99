"""The ``goalrl serve`` HTTP API on a tiny checkpoint: commands, uploads, bad input, confinement."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1]))
from tiny_reacher import ENV, SIZE, relabelled_copy, tiny_checkpoint  # noqa: E402

from goalrl.goal_image import save_goal_png  # noqa: E402
from goalrl.reacher import capture_goal  # noqa: E402
from goalrl.serve import start_server  # noqa: E402

MAX_BYTES = 300_000
MAX_PIXELS = 1_000_000


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def server(ckpt, tmp_path_factory):
    """A server on a free port, run from an empty working folder (to see what it writes)."""
    cwd = tmp_path_factory.mktemp("serve_cwd")
    before = os.getcwd()
    os.chdir(cwd)
    try:
        srv = start_server(
            ckpt, "out", port=0, device="cpu", max_steps=4, realtime=False, gallery=2,
            max_upload_bytes=MAX_BYTES, max_upload_pixels=MAX_PIXELS,
            checkpoint_roots=(tmp_path_factory.getbasetemp(),),
        )  # fmt: skip
        thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1})
        thread.start()
        yield srv
        srv.close()
        thread.join(10)
        assert sorted(p.name for p in cwd.iterdir()) == ["out"]  # nothing written elsewhere
        assert {p.name for p in (cwd / "out").iterdir()} <= {"goals", "runs"}
    finally:
        os.chdir(before)


def request(srv, method: str, path: str, body=None, headers=None) -> tuple[int, dict, bytes]:
    """(status, headers, body) over a fresh connection; JSON bodies from dicts."""
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60)
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def call(srv, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
    status, _, data = request(srv, method, path, body, headers)
    return status, json.loads(data) if data else {}


def wait_job(srv, job_id: str, timeout: float = 120) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = call(srv, "GET", "/api/status")[1]["job"]
        if job["id"] == job_id and job["state"] in ("done", "stopped", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"command {job_id} did not finish in {timeout} s")


@contextmanager
def worker_held(srv):
    """Keep the arm's thread busy, so an admitted command stays queued (no timing races)."""
    entered, release = threading.Event(), threading.Event()

    def block(_reacher) -> None:
        entered.set()
        release.wait(60)

    thread = threading.Thread(target=srv.worker.call, args=(block,))
    thread.start()
    assert entered.wait(30)
    try:
        yield
    finally:
        release.set()
        thread.join(30)


def image_bytes(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(array)
    (img.convert(mode) if mode else img).save(buf, format=fmt)
    return buf.getvalue()


PICTURE = capture_goal(ENV, 5, image_size=40).image  # a picture of the scene, no state


# ---- page, status, frames, gallery --------------------------------------------------------
def test_page_and_static_files(server) -> None:
    status, headers, body = request(server, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'src="/static/app.js"' in body
    assert request(server, "GET", "/static/app.js")[0] == 200
    assert request(server, "GET", "/static/style.css")[0] == 200
    assert call(server, "GET", "/static/../server.py")[0] == 404
    assert call(server, "GET", "/api/nope")[0] == 404


def test_status_frame_and_gallery(server) -> None:
    status, s = call(server, "GET", "/api/status")
    assert status == 200 and s["env"] == ENV and s["image_size"] == SIZE and s["max_steps"] == 4
    status, headers, jpeg = request(server, "GET", "/api/frame.jpg?after=-1")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg)).size == (256, 256) and int(headers["X-Frame-Seq"]) >= 1
    goals = call(server, "GET", "/api/goals")[1]["goals"]
    assert [g["seed"] for g in goals[:2]] == [1_000_000, 1_000_001]
    assert all(g["state_known"] and g["source"] == "capture" for g in goals[:2])
    png = request(server, "GET", goals[0]["url"])
    assert png[0] == 200 and Image.open(io.BytesIO(png[2])).size == (SIZE, SIZE)
    assert call(server, "GET", "/api/frame.jpg?after=x")[0] == 400


def test_command_round_trip(server) -> None:
    status, data = call(server, "POST", "/api/reset", {"seed": 1_000_000})
    assert status == 200 and data["seed"] == 1_000_000
    status, data = call(server, "POST", "/api/command", {"goal": "g0001"})
    assert status == 202 and data["job"]["state"] in ("queued", "running", "done")
    job = wait_job(server, data["job"]["id"])
    assert job["state"] == "done", job
    result = job["result"]
    assert isinstance(result["success"], bool) and result["goal_state_known"]
    assert 1 <= result["steps"] <= 4 and len(job["q_values"]) == result["steps"]
    status, headers, video = request(server, "GET", job["video"])
    if job["video"].endswith(".mp4"):  # H.264 when PyAV has libx264, else WebM/VP8
        assert status == 200 and headers["Content-Type"] == "video/mp4" and video[4:8] == b"ftyp"
    else:
        assert status == 200 and headers["Content-Type"] == "video/webm"
        assert video[:4] == b"\x1aE\xdf\xa3"  # EBML magic
    saved = server.out / "runs" / f"{job['id']}.json"
    assert json.loads(saved.read_text())["steps"] == result["steps"]


def test_a_second_command_is_refused_while_one_runs(server, ckpt) -> None:
    with worker_held(server):
        status, first = call(server, "POST", "/api/command", {"goal": "g0002"})
        assert status == 202
        status, err = call(server, "POST", "/api/command", {"goal": "g0001"})
        assert status == 409 and "moving toward goal g0002" in err["error"]
        assert call(server, "POST", "/api/reset", {})[0] == 409
        status, err = call(server, "POST", "/api/checkpoint", {"path": str(ckpt)})
        assert status == 409 and "switch checkpoints" in err["error"]
        assert call(server, "POST", "/api/stop", {})[1] == {"stopping": True}
    job = wait_job(server, first["job"]["id"])
    assert job["state"] == "stopped" and job["result"]["steps"] == 0
    status, again = call(server, "POST", "/api/command", {"goal": "g0001"})  # free again
    assert status == 202 and wait_job(server, again["job"]["id"])["state"] == "done"


def test_capture_and_bad_requests(server) -> None:
    status, data = call(server, "POST", "/api/capture", {"seed": 12})
    assert status == 201 and data["goal"]["seed"] == 12 and data["goal"]["state_known"]
    assert call(server, "POST", "/api/capture", {"seed": "twelve"})[0] == 400
    assert call(server, "POST", "/api/capture", b"{not json")[0] == 400
    assert call(server, "POST", "/api/command", {"goal": "g9999"})[0] == 404
    assert call(server, "POST", "/api/command", {})[0] == 400
    assert call(server, "POST", "/api/reset", {"seed": -3})[0] == 400
    for bad in (True, 1.5, "3"):  # JSON true is a Python bool, and bool is an int subclass
        status, data = call(server, "POST", "/api/reset", {"seed": bad})
        assert status == 400 and "seed must be an integer" in data["error"]
        assert call(server, "POST", "/api/capture", {"seed": bad})[0] == 400


def test_checkpoint_answers_do_not_tell_which_paths_exist(server) -> None:
    """A path outside the checkpoint roots gets the answer a missing path gets."""
    outside = str(Path(np.__file__).parent)  # exists, outside the roots
    missing = str(server.checkpoint_roots[0] / "no_such_run")
    answers = []
    for path in (outside, missing, outside + "/../../nope"):
        status, data = call(server, "POST", "/api/checkpoint", {"path": path})
        answers.append((status, data["error"].replace(repr(path), "<path>")))
    assert answers[0] == answers[1] == answers[2] and answers[0][0] == 404
    assert call(server, "POST", "/api/checkpoint", {"path": "a\x00b"})[0] == 400


# ---- uploads ----------------------------------------------------------------------------------
def test_uploads_of_rgb_images_join_the_gallery(server, tmp_path) -> None:
    name = {"X-Goal-Name": "a.png"}
    status, data = call(server, "POST", "/api/goals", image_bytes(PICTURE), name)
    assert status == 201 and data["goal"]["name"] == "a.png" and not data["goal"]["state_known"]
    assert any("resized from 40x40" in n for n in data["goal"]["notes"])
    status, data = call(server, "POST", "/api/goals", image_bytes(PICTURE, "JPEG"))
    assert status == 201
    rgba = np.concatenate([PICTURE, np.full((40, 40, 1), 255, np.uint8)], -1)
    status, data = call(server, "POST", "/api/goals", image_bytes(rgba))
    assert status == 201 and "opaque alpha channel dropped" in data["goal"]["notes"]
    save_goal_png(tmp_path / "goal.png", capture_goal(ENV, 21, image_size=64))
    status, data = call(server, "POST", "/api/goals", (tmp_path / "goal.png").read_bytes())
    assert status == 201 and data["goal"]["state_known"] and data["goal"]["seed"] == 21
    ids = [g["id"] for g in call(server, "GET", "/api/goals")[1]["goals"]]
    assert data["goal"]["id"] in ids
    job = call(server, "POST", "/api/command", {"goal": data["goal"]["id"]})[1]["job"]
    assert wait_job(server, job["id"])["state"] == "done"


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"", 400, "empty"),
        (image_bytes(PICTURE)[:120], 415, "damaged or truncated"),
        (b"plain text, no picture", 415, "not an image"),
        (image_bytes(np.zeros((1100, 1000, 3), np.uint8)), 413, "1,100,000 pixels"),
        (image_bytes(PICTURE, mode="L"), 422, "grayscale"),
        (image_bytes(PICTURE, mode="LA"), 422, "grayscale"),
        (image_bytes(np.concatenate([PICTURE, np.zeros((40, 40, 1), np.uint8)], -1)), 422,
         "transparent"),
        (image_bytes(np.repeat(PICTURE.mean(-1, keepdims=True), 3, -1).astype(np.uint8)), 422,
         "grayscale"),  # three channels, no colour
        (image_bytes(np.kron(np.random.default_rng(3).integers(0, 256, (4, 4, 3), np.uint8),
                             np.ones((10, 10, 1), np.uint8))), 422,
         "from the scene's camera view"),  # photo-like: the rule of `goalrl command` and the API
    ],
)  # fmt: skip
def test_bad_uploads_get_clear_4xx_and_the_server_goes_on(server, body, status, words) -> None:
    got, data = call(server, "POST", "/api/goals", body)
    assert got == status and words in data["error"], data
    assert call(server, "GET", "/api/status")[0] == 200


def test_unmatchable_and_oversize_uploads_are_refused_before_decoding(server, monkeypatch):
    """Gray and oversize images are refused on the header; a see-through one (the RGBA bomb:
    16 megapixels in 62 KB) right after PIL decodes it, before any numpy copy or float math."""
    import tracemalloc

    from PIL import ImageFile

    from goalrl.serve.server import decode_upload

    def no_decoding(self, *args):
        raise AssertionError("decoded")

    gray = image_bytes(PICTURE, mode="L")
    oversize = image_bytes(np.zeros((1100, 1000, 3), np.uint8))
    bomb = image_bytes(np.zeros((1000, 1000, 4), np.uint8))  # transparent, within the limits
    with monkeypatch.context() as patch:
        patch.setattr(ImageFile.ImageFile, "load", no_decoding)
        assert call(server, "POST", "/api/goals", gray)[0] == 422
        assert call(server, "POST", "/api/goals", oversize)[0] == 413
    tracemalloc.start()  # numpy's allocations are traced, PIL's decoder buffer is not
    try:
        with pytest.raises(Exception, match="transparent") as err:
            decode_upload(bomb, "bomb.png", server.worker, MAX_PIXELS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.status == 422 and peak < 1_000_000  # a numpy copy alone would be 4 MB


def test_parallel_uploads_are_all_answered(server) -> None:
    """50 uploads at once: the listen backlog of 5 reset 18 to 31 of them."""
    start = threading.Barrier(50)
    statuses: list = []

    def upload() -> None:
        start.wait(30)
        try:
            statuses.append(call(server, "POST", "/api/goals", image_bytes(PICTURE))[0])
        except OSError as err:  # a reset connection
            statuses.append(repr(err))

    threads = [threading.Thread(target=upload) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses == [201] * 50
    assert len(server.threads) <= server.max_threads


def test_slow_clients_are_dropped_and_threads_stay_bounded(server) -> None:
    """Half-sent requests, more of them than threads: a normal request is answered at once,
    each of them is dropped timeout_s after connecting, and they take no serving thread."""
    import socket

    host, port = server.server_address[:2]
    saved = server.timeout_s
    server.timeout_s = 0.5  # the silence allowed (10 s by default)
    slow = []
    try:
        for _ in range(server.max_threads + 8):
            sock = socket.create_connection((host, port), timeout=60)
            sock.sendall(b"POST /api/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
            slow.append(sock)
        threads_before = len(server.threads)
        assert call(server, "GET", "/api/status")[0] == 200  # answered despite them
        assert len(server.threads) <= max(threads_before, 1) + 1  # none taken by the slow ones
        for sock in slow:  # the server closed each (recv returns b"" at end of stream)
            assert sock.recv(1024) == b""
        # a head sent a byte at a time (slowloris) is dropped too: the limit is for the whole
        # head, counted from the connection, not for each read
        trickle = socket.create_connection((host, port), timeout=60)
        slow.append(trickle)
        try:
            for byte in b"GET /api/status HTTP/1.1\r\nX-Padding: " + b"x" * 200:
                trickle.sendall(bytes([byte]))
                time.sleep(0.02)
            dropped = trickle.recv(1024) == b""
        except ConnectionError:  # sending to a closed connection: reset (not a timeout)
            dropped = True
        assert dropped
        assert len(server.threads) <= server.max_threads
    finally:
        server.timeout_s = saved
        for sock in slow:
            sock.close()


def test_upload_limits_are_checked_before_reading(server) -> None:
    too_big = b"\x89PNG" + b"\0" * MAX_BYTES
    status, data = call(server, "POST", "/api/goals", too_big)
    assert status == 413 and f"the limit is {MAX_BYTES:,} bytes" in data["error"]
    # a client that asks first (Expect: 100-continue) is refused before sending anything
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.putrequest("POST", "/api/goals")
    conn.putheader("Content-Length", str(10 * MAX_BYTES))
    conn.putheader("Expect", "100-continue")
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and b"the limit is" in resp.read()
    conn.close()
    # no Content-Length (chunked, or none at all): 411, answered on the headers alone
    for header in (("Transfer-Encoding", "chunked"), ("X-Nothing", "1")):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.putrequest("POST", "/api/goals")
        conn.putheader(*header)
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 411 and b"Content-Length" in resp.read()
        conn.close()
    assert call(server, "GET", "/api/status")[0] == 200


def test_goals_and_checkpoints_of_other_scenes_are_refused(server, ckpt, tmp_path) -> None:
    save_goal_png(tmp_path / "reach.png", capture_goal("goalrl/Reach-v0", 1, image_size=SIZE))
    status, data = call(server, "POST", "/api/goals", (tmp_path / "reach.png").read_bytes())
    assert status == 422 and "captured in goalrl/Reach-v0" in data["error"]
    status, data = call(server, "POST", "/api/checkpoint", {"path": str(tmp_path / "nope")})
    assert status == 404 and "no checkpoint" in data["error"]
    (tmp_path / "empty").mkdir()
    status, data = call(server, "POST", "/api/checkpoint", {"path": str(tmp_path / "empty")})
    assert status == 422 and "not a goalrl checkpoint" in data["error"]
    other = relabelled_copy(ckpt, tmp_path / "reach_ckpt", env_id="goalrl/Reach-v0")
    status, data = call(server, "POST", "/api/checkpoint", {"path": str(other)})
    assert status == 422 and "this arm is in goalrl/Push-v0" in data["error"]
    status, data = call(server, "POST", "/api/checkpoint", {"path": str(ckpt)})
    assert status == 200 and data["env"] == ENV


# ---- confinement and origin checks ------------------------------------------------------------
@pytest.mark.parametrize(
    "path, status",
    [
        ("/files/../../../etc/passwd", 403),
        ("/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 403),
        ("/files/..%2f..%2f..%2fetc/passwd", 403),
        ("/files//etc/passwd", 403),
        ("/files/goals/nothing.png", 404),
        ("/files/%00", 400),
    ],
)
def test_files_are_confined_to_the_output_folder(server, path, status) -> None:
    assert call(server, "GET", path)[0] == status


def test_links_out_of_the_folder_and_other_file_types_are_not_served(server, tmp_path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(image_bytes(PICTURE))
    (server.out / "goals" / "link.png").symlink_to(secret)
    (server.out / "runs" / "notes.txt").write_text("x")
    assert call(server, "GET", "/files/goals/link.png")[0] == 403
    assert call(server, "GET", "/files/runs/notes.txt")[0] == 403
    (server.out / "goals" / "link.png").unlink()
    (server.out / "runs" / "notes.txt").unlink()


def test_foreign_hosts_and_origins_are_refused(server) -> None:
    status, data = call(server, "GET", "/api/status", headers={"Host": "evil.example:80"})
    assert status == 403 and "not this machine" in data["error"]
    host = "{}:{}".format(*server.server_address[:2])
    status, data = call(server, "POST", "/api/reset", {}, {"Origin": "http://evil.example"})
    assert status == 403
    assert call(server, "POST", "/api/stop", {}, {"Origin": f"http://{host}"})[0] == 200


# ---- the real command line ---------------------------------------------------------------------
def test_goalrl_serve_cli_starts_and_stops(ckpt, tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "goalrl.cli", "serve", f"ckpt={ckpt}", "port=0", "gallery=1",
         f"out={tmp_path / 'out'}", "device=cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = ""
        while "http://" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
        url = line.split()[2]
        host, port = url.removeprefix("http://").strip("/").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", "/api/status")
        assert json.loads(conn.getresponse().read())["env"] == ENV
        conn.close()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        assert code == 0, f"exit {code}; stderr: {proc.stderr.read()[-4000:]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_goalrl_serve_cli_refuses_a_missing_checkpoint(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "goalrl.cli", "serve", f"ckpt={tmp_path / 'nope'}", "port=0",
         f"out={tmp_path / 'out'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and "does not exist" in proc.stderr
