"""A small web app: draw a digit (or upload a picture) and watch the model read it.

    $ mnistlab serve runs/mlp-5                  # then open http://127.0.0.1:8000
    >>> from mnistlab.serving.server import create_app  # a Flask app, e.g. for app.test_client()
    >>> app = create_app("runs/mlp-5")

The page (GET /) has a canvas to draw on with a mouse, pen or finger
(pointer events), a Clear button, an upload button (or drop a file on the
canvas), the 28x28 image the model actually sees after `mnistlab.serving.digits.to_mnist`,
and a bar per class that updates while you draw (at most every 150 ms).

JSON API
--------
POST /api/predict
    multipart/form-data with the picture in the field `file` (any format
    Pillow reads; any size, colour or polarity). Answers 200 with the same
    object `mnistlab predict --json` gives for one image, plus the preview:

        {"path": "<the uploaded file name>", "prediction": 7,
         "probabilities": [10 floats summing to 1],
         "preview": "data:image/png;base64,..."}      (the 28x28 model input)

        $ curl -F file=@seven.jpg http://127.0.0.1:8000/api/predict

    Errors are JSON too, {"error": "..."}: 400 without a `file` field or
    with an empty one; 422 when the file is not an image, is blank, or its
    size is absurd (under 8 px or over 50 megapixels); 413 when the request
    is over MAX_CONTENT_LENGTH (5 MB). The server keeps serving.
GET /api/info
    {"run", "model", "dataset", "class_names", "test_accuracy", "backend"}.

The server listens on 127.0.0.1 unless told otherwise; it is Werkzeug's
development server, meant for one person's machine, not for the internet.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from mnistlab import runs
from mnistlab.errors import MnistlabError
from mnistlab.serving import digits

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
STATIC = Path(__file__).with_name("static")


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a `data:` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class Predictor:
    """A run's model behind a lock (Keras models are not meant for concurrent calls)."""

    def __init__(self, run_dir, model=None):
        from mnistlab.evaluation import evaluate as evaluation
        self.run_dir = evaluation.check_run_dir(run_dir)
        self.model = model if model is not None else evaluation.load_best_model(self.run_dir)
        self.class_names = evaluation.class_names(self.run_dir)
        self._lock = threading.Lock()
        self.predict(np.zeros((28, 28), dtype=np.float32))  # compile now, not on the first request

    def predict(self, image: np.ndarray) -> np.ndarray:
        with self._lock:
            return digits.predict_arrays(self.model, image[None])[0]

    def info(self) -> dict:
        import keras

        from mnistlab.evaluation import evaluate as evaluation
        cfg = evaluation.run_config(self.run_dir)
        metrics_path = self.run_dir / runs.METRICS
        metrics = runs.read_json(metrics_path) if metrics_path.exists() else {}
        return {
            "run": self.run_dir.name,
            "model": (cfg.get("config") or {}).get("model"),
            "dataset": evaluation.run_dataset(self.run_dir),
            "class_names": self.class_names,
            "test_accuracy": metrics.get("test_accuracy"),
            "backend": keras.backend.backend(),
        }


def predict_upload(predictor: Predictor, data: bytes, filename: str) -> dict:
    """The API's answer for one uploaded file (raises `MnistlabError` for a bad one)."""
    image = digits.load_digit(data, name=filename)
    probs = predictor.predict(image)
    record = digits.prediction_record(filename, probs)
    record["preview"] = png_data_uri(digits.png_bytes(image))
    return record


def create_app(run_dir, model=None, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> Flask:
    """The Flask app serving `run_dir`'s best.keras; see the module docstring.

    Args:
        run_dir: a run folder holding best.keras.
        model: an already loaded model to use instead of best.keras.
        max_upload_bytes: requests larger than this are answered 413.
    """
    predictor = Predictor(run_dir, model)
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["mnistlab_predictor"] = predictor

    def error(status: int, message: str):
        response = jsonify({"error": message})
        response.status_code = status
        return response

    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html")

    @app.get("/api/info")
    def info():
        return jsonify(predictor.info())

    @app.post("/api/predict")
    def predict():
        upload = request.files.get("file")
        if upload is None:
            return error(400, "send the image as multipart/form-data in the field 'file'")
        filename = Path(upload.filename or "upload").name or "upload"
        data = upload.read()
        if not data:
            return error(400, f"{filename} is empty (0 bytes)")
        try:
            return jsonify(predict_upload(predictor, data, filename))
        except MnistlabError as e:
            return error(422, str(e))

    @app.errorhandler(413)
    def too_large(e):
        mb = max_upload_bytes / (1024 * 1024)
        return error(413, f"the upload is larger than {mb:g} MB: send a smaller picture")

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        if request.path.startswith("/api/"):
            return error(e.code or 500, e.description or e.name)
        return e

    return app


def check_address(host: str, port: int) -> None:
    """Raise `MnistlabError` unless `host:port` can be listened on now."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as e:
        raise MnistlabError(f"cannot listen on {host}:{port} ({e.strerror or e}): choose another "
                            "--port or --host") from None


def serve(run_dir, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve `run_dir` on http://host:port until interrupted."""
    from werkzeug.serving import make_server

    check_address(host, port)  # before the model loads: a busy port fails at once
    app = create_app(run_dir)
    try:
        server = make_server(host, port, app, threaded=True)
    except (OSError, SystemExit) as e:  # Werkzeug exits when the port is taken
        raise MnistlabError(f"cannot listen on {host}:{port} ({e}): choose another --port") from None
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {Path(run_dir)} on http://{shown}:{server.server_port}/  (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
