"""A real HTTP request against the exported SavedModel served by MLflow on 127.0.0.1.

Needs the optional extra ``serve`` (mlflow-skinny); the server is started with
``mlflow models serve --env-manager local`` (no conda, no network) and stopped
at the end, whatever happens.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import mlflow  # noqa: E402,F401  (the test extra installs it; a missing one must fail)

from neuronedit_tf import NeuronEditor  # noqa: E402
from neuronedit_tf.serving import mlflow_model, rest_request  # noqa: E402

STARTUP_SECONDS = 240


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def server(tmp_path):
    rng = np.random.default_rng(0)
    source = rng.normal(size=(300, 4)).astype(np.float32)
    editor = NeuronEditor(hidden=(16, 8, 4)).fit(source, source * 1.5 + 1.0, epochs=2, verbose=0)
    export = editor.export(tmp_path / "served", name="neuronedit", verify=False)
    model = mlflow_model(export["path"], tmp_path / "mlflow_model")
    port = free_port()
    bin_dir = os.fspath(Path(sys.executable).parent)  # mlflow starts `uvicorn` from PATH
    environment = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
                       TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(
        [os.path.join(bin_dir, "mlflow"), "models", "serve", "-m", os.fspath(model),
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: stopped with every child below
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow models serve exited: {process.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/ping", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve did not answer within {STARTUP_SECONDS} s")
            time.sleep(1)
        yield url, editor, export["path"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_mlflow_serves_the_exported_graph_over_http(server):
    url, editor, folder = server
    rows = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    status, answer = post(url + "/invocations", rest_request(folder, rows))
    assert status == 200, answer
    np.testing.assert_allclose(np.array(answer["predictions"]["edited"]), editor.transform(rows),
                               rtol=1e-5, atol=1e-5)
    status, answer = post(url + "/invocations", {"inputs": {"features": np.ones((2, 3)).tolist()}})
    assert status == 400 and "schema" in answer["message"]
