"""mnistlab.serving.server through Flask's test client, and once over real HTTP with concurrent requests."""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import digit_images
from digit_images import font_digit, pen_digit
from mnistlab.serving import digits
from mnistlab.serving import server as serving
def png(image, fmt="PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    (image.convert("RGB") if fmt == "JPEG" else image).save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    run_dir = digit_images.trained_run(tmp_path_factory)
    return serving.create_app(run_dir, model=digit_images.trained_model(tmp_path_factory))


@pytest.fixture()
def client(app):
    return app.test_client()


def post(client, data: bytes | None, filename="digit.png", field="file"):
    form = {} if data is None else {field: (io.BytesIO(data), filename)}
    return client.post("/api/predict", data=form, content_type="multipart/form-data")


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and b"<canvas" in page.data and b"/static/app.js" in page.data
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    js = client.get("/static/app.js").data.decode()
    assert "pointerdown" in js and "/api/predict" in js


def test_info(client):
    info = client.get("/api/info").get_json()
    assert info["dataset"] == "mnist" and info["model"] == "mlp"
    assert info["class_names"] == [str(i) for i in range(10)]
    assert 0.9 < info["test_accuracy"] <= 1


@pytest.mark.parametrize("digit,image,fmt", [
    (7, pen_digit(7), "PNG"),
    (2, pen_digit(2, size=(500, 700), mode="RGB", ink=(10, 30, 120), paper=(255, 250, 235)), "JPEG"),
    (0, pen_digit(0, mode="RGBA"), "PNG"),
    (5, pen_digit(5, dark_on_light=False, size=(64, 64)), "PNG"),
    (3, font_digit(3, size=(300, 200)), "JPEG"),
])
def test_predict_answers_like_predict_json(client, tmp_path, digit, image, fmt):
    data = png(image, fmt)
    name = f"upload.{fmt.lower()}"
    answer = post(client, data, name)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert set(body) == {"path", "prediction", "probabilities", "preview"}
    assert body["path"] == name and body["prediction"] == digit
    assert len(body["probabilities"]) == 10 and sum(body["probabilities"]) == pytest.approx(1, abs=1e-4)
    # The same object as `mnistlab predict --json` (path aside) ...
    path = tmp_path / name
    path.write_bytes(data)
    from flask import current_app  # noqa: F401  (the app's model is the trained one)

    expected = digits.predict_images(client.application.extensions["mnistlab_predictor"].model, [path])[0]
    assert body["prediction"] == expected["prediction"]
    assert np.allclose(body["probabilities"], expected["probabilities"], atol=1e-5)
    # ... and the preview is the 28x28 picture the model saw.
    assert body["preview"].startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(body["preview"].split(",", 1)[1]))) as seen:
        assert seen.size == (28, 28) and seen.mode == "L"
        assert np.abs(np.asarray(seen, float) - digits.load_digit(path)).max() <= 0.5


def test_upload_names_are_not_paths(client):
    body = post(client, png(pen_digit(1)), "../../etc/one.png").get_json()
    assert body["path"] == "one.png" and body["prediction"] == 1


@pytest.mark.parametrize("make,status,words", [
    (lambda: None, 400, "field 'file'"),
    (lambda: b"", 400, "empty"),
    (lambda: b"GIF89a but not really", 422, "not an image"),
    (lambda: b"\x00" * 1000, 422, "not an image"),
    (lambda: png(Image.new("L", (300, 300), 255)), 422, "blank"),
    (lambda: png(Image.new("RGB", (300, 300), (20, 20, 20)), "JPEG"), 422, "blank"),
    (lambda: png(pen_digit(4, size=(5, 60))), 422, "5x60"),
    (lambda: png(Image.new("1", (9000, 6000))), 422, "megapixels"),
    (lambda: png(pen_digit(4))[:300], 422, "truncated"),
])
def test_bad_uploads_get_json_errors(client, make, status, words):
    answer = post(client, make(), "bad.png")
    assert answer.status_code == status
    assert answer.is_json and words in answer.get_json()["error"]
    if status == 422:
        assert "bad.png" in answer.get_json()["error"]
    good = post(client, png(pen_digit(8)), "eight.png")  # and the server goes on
    assert good.status_code == 200 and good.get_json()["prediction"] == 8


def test_too_large_requests_get_413_json(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 5 * 1024 * 1024
    answer = post(client, b"\x89PNG" + bytes(limit), "big.png")
    assert answer.status_code == 413 and "5 MB" in answer.get_json()["error"]
    assert post(client, png(pen_digit(6)), "six.png").get_json()["prediction"] == 6


def test_other_api_errors_are_json(client):
    for method, url, status in (("get", "/api/predict", 405), ("get", "/api/nothing", 404),
                                ("post", "/api/info", 405)):
        answer = getattr(client, method)(url)
        assert answer.status_code == status and "error" in answer.get_json()


def test_concurrent_requests_over_http(app):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/api/predict"
    try:
        def ask(digit):
            boundary = "----mnistlab-test"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                    f"filename=\"d{digit}.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
            body += png(pen_digit(digit)) + f"\r\n--{boundary}--\r\n".encode()
            request = urllib.request.Request(
                url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read())["prediction"]

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(ask, list(range(10)) * 2)) == list(range(10)) * 2
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(url, data=b"x=1"), timeout=30)
        assert e.value.code == 400 and "error" in json.loads(e.value.read())
    finally:
        server.shutdown()
        server.server_close()


def test_cli_serve_refuses_a_busy_port_at_once(tmp_path_factory):
    import os
    import socket
    import subprocess
    import sys

    run_dir = digit_images.trained_run(tmp_path_factory)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "mnistlab", "serve", str(run_dir), "--port", str(port)],
                              capture_output=True, text=True, timeout=60, env={**os.environ})
    assert done.returncode == 2 and f"127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr
