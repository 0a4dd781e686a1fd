"""Write the Colab-ready notebooks of this folder (outputs empty), from one place.

    python notebooks/make_notebooks.py

Every notebook starts with an install cell (a no-op where neuronedit_tf is
already importable), a parameters cell (tag ``parameters``, small defaults so
tests/test_notebooks.py runs all six in a few minutes) and a cell that picks a
``tf.distribute`` strategy for a Colab TPU or several GPUs. Edit this script,
not the .ipynb files; tests/test_notebooks.py checks they agree.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
COLAB = "https://colab.research.google.com/github/neuronedit/neuronedit_tf/blob/main/notebooks/{}.ipynb"
BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({})"

INSTALL = """\
# Install neuronedit_tf (on Colab); a no-op where it is already importable.
try:
    import neuronedit_tf
except ImportError:
    !pip install -q neuronedit_tf
    import neuronedit_tf
print("neuronedit_tf", neuronedit_tf.__version__)"""

STRATEGY = """\
# Pick the hardware: a Colab TPU, several GPUs, or the default (one GPU or the CPU).
import os
import tensorflow as tf

strategy = None  # None: TensorFlow's default device placement
if os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME") or os.path.exists("/dev/accel0"):
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    strategy = tf.distribute.TPUStrategy(resolver)
elif len(tf.config.list_logical_devices("GPU")) > 1:
    strategy = tf.distribute.MirroredStrategy()
print("strategy:", type(strategy or tf.distribute.get_strategy()).__name__,
      "| devices:", [d.name for d in tf.config.list_logical_devices()])"""


def notebook(name, title, intro, parameters, cells):
    """A notebook: title + badge, install, parameters, strategy, then ``cells``
    (strings; those starting with ``#md`` are Markdown)."""
    header = f"# {title}\n\n{BADGE.format(COLAB.format(name))}\n\n{intro}"
    parameters_cell = new_code_cell("# Parameters (small defaults: the test suite runs this notebook)\n"
                                    + parameters)
    parameters_cell.metadata["tags"] = ["parameters"]
    body = [new_markdown_cell(header), new_code_cell(INSTALL), parameters_cell,
            new_code_cell(STRATEGY)]
    for cell in cells:
        if cell.startswith("#md"):
            body.append(new_markdown_cell(cell[3:].strip()))
        else:
            body.append(new_code_cell(cell.strip()))
    for number, cell in enumerate(body):
        cell.id = f"{name}-{number:02d}"  # stable ids: regenerating changes nothing
    result = new_notebook(cells=body)
    result.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
    result.metadata["language_info"] = {"name": "python"}
    result.metadata["colab"] = {"provenance": []}
    result.metadata["accelerator"] = "GPU"
    return result


SCALE = """\
def scale(data, cofactor=5.0):
    \"\"\"Cytometry values on the arcsinh(x / cofactor) scale, where the edit works.\"\"\"
    return np.arcsinh(np.asarray(getattr(data, "values", data), np.float64) / cofactor)"""

NOTEBOOKS = {}

NOTEBOOKS["01_quickstart"] = notebook(
    "01_quickstart", "neuronedit quickstart",
    "Neuron editing learns how a source set **S** became a target set **T** and applies that "
    "change to a new set **X** whose result was never observed. Here: real mass cytometry "
    "(CyTOF) files from the `cytonormpy` 1.0.2 wheel (fetched once and cached). Donor 1 was "
    "measured in batch 021 (S) and again in batch 028 (T); we move donor 2's batch-021 cells "
    "(X) into batch 028 and score against donor 2's real batch-028 file.",
    "EPOCHS = 10            # the paper trains until early stopping (up to 200)\n"
    "HIDDEN = (64, 32, 16)  # the paper: (500, 250, 50)\n"
    "SEED = 0\n"
    "VERBOSE = 0",
    [
        """\
import numpy as np
from neuronedit_tf import NeuronEditor, metrics, zoo
from neuronedit_tf.data import load_cytof

source, target = load_cytof("021", 1), load_cytof("028", 1)   # spike-ins: batch 021 -> 028
sample, truth = load_cytof("021", 2), load_cytof("028", 2)     # X, and its real batch-028 file
print(source.values.shape, "cells x markers; first markers:", source.channels[:4])""",
        "#md ## Fit and transform\nThe arcsinh transform (cofactor 5 for CyTOF) lives in the "
        "model graph, so raw values go in and raw values come out.",
        """\
editor = NeuronEditor(transform="arcsinh", cofactor=5, hidden=HIDDEN, seed=SEED, strategy=strategy)
editor.fit(source, target, extra=sample, epochs=EPOCHS, verbose=VERBOSE)
edited = editor.transform(sample)           # FCSData in, FCSData out
print(type(edited).__name__, edited.values.shape)""",
        SCALE,
        """\
s, t, x, e, y = (scale(d) for d in (source, target, sample, edited, truth))
print(f"paper's metric, Pearson r of median changes: {metrics.median_change_r(s, t, x, e):.3f}")
print(f"mean per-marker EMD to the real batch-028 file: edited {metrics.mean_emd(e, y):.3f}, "
      f"uncorrected {metrics.mean_emd(x, y):.3f}, sampling floor {metrics.emd_noise_floor(y, seed=SEED):.3f}")""",
        "#md ## Save, load, and the pretrained preset\n`save` writes a folder; `load` uses Keras "
        "`safe_mode` (no code runs). The zoo's `cytof_spikein` preset is this same case trained "
        "to early stopping with the paper's network.",
        """\
editor.save("my_editor", overwrite=True)
again = NeuronEditor.load("my_editor")
assert np.array_equal(again.transform(sample.values), editor.transform(sample.values))

preset = zoo.load("cytof_spikein")
print("preset metrics (from its metadata):", preset.metadata["metrics"])
print("preset EMD here:", round(metrics.mean_emd(scale(preset.transform(sample)), y), 4))
for row in zoo.list_presets():
    print(row["name"], "-", row["description"])""",
    ],
)

NOTEBOOKS["02_spike_in_batch_correction"] = notebook(
    "02_spike_in_batch_correction", "Batch correction from spike-ins (CyTOF)",
    "The paper's batch-correction experiment on real CyTOF data: donor 1 measured in two "
    "batches shows the technical batch effect; neuron editing applies exactly that effect to "
    "donor 2, keeping donor 2's biology. We draw the paper's Figure 4 (biaxial plots before "
    "and after) and Figure 5 (median change per marker) style plots.",
    "USE_PRESET = True      # the zoo's cytof_spikein preset (trained to early stopping)\n"
    "EPOCHS = 10            # used when USE_PRESET is False\n"
    "HIDDEN = (64, 32, 16)\n"
    "SEED = 0",
    [
        """\
import numpy as np
import matplotlib.pyplot as plt
from neuronedit_tf import NeuronEditor, metrics, plotting, zoo
from neuronedit_tf.data import load_cytof

source, target = load_cytof("021", 1), load_cytof("028", 1)
sample, truth = load_cytof("021", 2), load_cytof("028", 2)
names = [m or c for m, c in zip(source.markers, source.channels)]""",
        """\
if USE_PRESET:
    editor = zoo.load("cytof_spikein")
else:
    editor = NeuronEditor(transform="arcsinh", cofactor=5, hidden=HIDDEN, seed=SEED, strategy=strategy)
    editor.fit(source, target, extra=sample, epochs=EPOCHS, verbose=0)
edited = editor.transform(sample)""",
        SCALE,
        """\
s, t, x, e, y = (scale(d) for d in (source, target, sample, edited, truth))
batch_effect = np.abs(np.median(t, 0) - np.median(s, 0))
biology = np.abs(np.median(x, 0) - np.median(s, 0))
mx = int(np.argmax(batch_effect))                            # the marker the batch moved most
quiet = np.where((batch_effect <= np.median(batch_effect)) & (np.arange(len(names)) != mx))[0]
my = int(quiet[np.argmax(biology[quiet])])                    # where the donors differ, not the batch
print("x:", names[mx], "(batch effect)   y:", names[my], "(biology to keep)")""",
        "#md ## Figure 4 style: biaxial plots\nLeft: the spike-in pair shows the batch effect. "
        "Right: the sample before and after editing, with its real batch-028 file.",
        """\
figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
plotting.biaxial(axes[0], [("spike-in, batch 021", s, "tab:blue"),
                           ("spike-in, batch 028", t, "tab:orange")], mx, my, names,
                 title="spike-ins (donor 1)")
plotting.biaxial(axes[1], [("sample, batch 021", x, "tab:blue"),
                           ("edited to 028", e, "tab:green"),
                           ("real batch 028", y, "tab:red")], mx, my, names,
                 title="sample (donor 2)")
plt.show()""",
        "#md ## Figure 5 style: median change per marker\nEach point is a marker: the change "
        "seen in the spike-ins against the change the edit applied to the sample. The paper's "
        "metric is their Pearson r.",
        """\
figure, axes = plt.subplots(1, 2, figsize=(10, 4))
plotting.median_change(axes[0], np.median(t, 0) - np.median(s, 0),
                       np.median(e, 0) - np.median(x, 0), names)
emd_edited = list(metrics.emd_per_feature(e, y))
emd_before = list(metrics.emd_per_feature(x, y))
axes[1].scatter(emd_before, emd_edited, s=14)
top = max(emd_before + emd_edited)
axes[1].plot([0, top], [0, top], ls="--", color="grey")
axes[1].set_xlabel("EMD to batch 028, uncorrected")
axes[1].set_ylabel("EMD to batch 028, edited")
axes[1].set_title("per-marker EMD (below the line: better)")
plt.show()
print(f"r = {metrics.median_change_r(s, t, x, e):.3f}; mean EMD edited {np.mean(emd_edited):.3f}, "
      f"uncorrected {np.mean(emd_before):.3f}, floor {metrics.emd_noise_floor(y, seed=SEED):.3f}")""",
        "#md ## Write the corrected cells\nFCS output keeps every channel and keyword and notes "
        "the edit in `$COM`; files are written atomically.",
        """\
from neuronedit_tf.data import write
write("donor2_batch021_edited_to_028.fcs", edited, note="neuronedit: spike-in batch correction")
print(open("donor2_batch021_edited_to_028.fcs", "rb").read(6))""",
    ],
)

NOTEBOOKS["03_drug_combinations"] = notebook(
    "03_drug_combinations", "Predicting a drug combination",
    "The paper's Table 3 setting on real cells: basal cells are the 83,411-event human marrow "
    "B-lineage panel shipped in the `fcsparser` 0.2.8 wheel. Two drug effects that depend on "
    "each cell's state act on disjoint parts of it (see `neuronedit_tf.bench.drugs`): "
    "S = basal, T = drug A, X = drug B, and the truth A∘B(X) is known exactly for every cell. "
    "Neuron editing applies A's effect to the B-treated cells.",
    "N_CELLS = 2000         # cells per part (the benchmark: 10,000)\n"
    "EPOCHS = 10\n"
    "HIDDEN = (64, 32, 16)\n"
    "SEED = 0",
    [
        """\
import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
from neuronedit_tf import NeuronEditor, plotting
from neuronedit_tf.bench import drugs

case = drugs.drug_case(n_per_part=N_CELLS, seed=SEED)
print(case.names)""",
        """\
editor = NeuronEditor(transform="arcsinh", cofactor=drugs.COFACTOR, hidden=HIDDEN, seed=SEED,
                      strategy=strategy)
editor.fit(case.source, case.target, extra=case.extra, epochs=EPOCHS, verbose=0)
predictions = {
    "neuron editing": editor.transform(case.extra),
    "linear additive": drugs.linear_additive(case),
    "no change (drug B only)": case.extra,
}
scores = pd.DataFrame({name: drugs.score(case, p) for name, p in predictions.items()}).T
scores""",
        "#md The paper's metrics are `r_mean` and `r_var` (Pearson r of per-marker means and "
        "variances against the truth); energy distance and MMD compare whole distributions "
        "(lower is better).",
        """\
z = {name: drugs.to_scale(p) for name, p in predictions.items()}
truth = drugs.to_scale(case.truth)
figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
for ax, name in zip(axes, ["neuron editing", "linear additive"]):
    plotting.biaxial(ax, [("truth: A∘B", truth, "tab:red"), (name, z[name], "tab:green")],
                     drugs.CD19, drugs.CD20, case.names, title=name)
plt.show()""",
    ],
)

NOTEBOOKS["04_image_editing"] = notebook(
    "04_image_editing", "Editing images: thicker strokes on unseen digits",
    "The paper's Figure 2 setting on real images (scikit-learn's bundled 8×8 digits): an edit "
    "(\"thicker strokes\", a 2×2 grey dilation) is learned on digits 0–4 and applied to digits "
    "5–9, which the model never saw edited. The zoo's `digits_thicken` preset is a small "
    "convolutional editor trained on this case; we also train one briefly here.",
    "EPOCHS = 15                  # training here; the preset trained for 60\n"
    "FILTERS = (16, 32, 64)       # the paper: (64, 128, 256)\n"
    "CLASSIFIER_EPOCHS = 5        # the scoring classifier\n"
    "SEED = 0",
    [
        """\
import numpy as np
import pandas as pd
from IPython.display import Image, display
from neuronedit_tf import NeuronEditor, zoo
from neuronedit_tf.bench import images
from neuronedit_tf.models import conv_autoencoder

case = images.image_case(seed=SEED)
print("source", case.source.shape, "target", case.target.shape, "X", case.extra.shape)""",
        """\
preset = zoo.load("digits_thicken")
model = conv_autoencoder((8, 8, 1), filters=FILTERS, seed=SEED)
editor = NeuronEditor(model=model, seed=SEED, strategy=strategy)
editor.fit(case.source, case.target, extra=case.extra, epochs=EPOCHS, verbose=0)
predictions = {
    "preset": preset.transform(case.extra),
    f"trained here ({EPOCHS} epochs)": editor.transform(case.extra),
}""",
        "#md Scores: per-image RMSE to the true thickened digit (0-16 pixel scale), the Fréchet "
        "distance on a small digit classifier's features, and the share of edited digits it still "
        "recognises. The classifier here trains for `CLASSIFIER_EPOCHS`; the preset's model card "
        "used 30, so its Fréchet distance there differs.",
        """\
classifier, features = images.train_classifier(seed=SEED, epochs=CLASSIFIER_EPOCHS)
rows = {name: images.score(case, p, classifier, features) for name, p in predictions.items()}
rows["no edit"] = images.score(case, case.extra, classifier, features)
pd.DataFrame(rows).T""",
        "#md ## Figure 2 style\nRows: the unseen digits, their true thickened version, and each "
        "editor's output.",
        """\
images.image_grid("digits_edit.png", case, predictions, n=10)
display(Image("digits_edit.png"))""",
    ],
)

NOTEBOOKS["05_export_and_serve"] = notebook(
    "05_export_and_serve", "Export and serve: SavedModel, TFLite, REST",
    "An editor exports as one graph, raw values in and edited raw values out: a SavedModel "
    "laid out for TF Serving (`NAME/VERSION/`, signatures `serving_default`, `encode`, `edit`, "
    "`decode`) and a TFLite file with builtin ops only. Each export is verified in a fresh "
    "Python process. We then build a TF Serving REST request from the signature and send it to "
    "a small stand-in server (TF Serving itself answers the same request on port 8501).",
    "VERIFY = True          # check the export in a fresh process (a few seconds)\n"
    "N_ROWS = 3             # rows in the REST example",
    [
        """\
import json, shutil, threading, urllib.request
import numpy as np
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from neuronedit_tf import zoo
from neuronedit_tf.data import load_cytof
from neuronedit_tf.serving import ServedEditor, models_config, rest_request

editor = zoo.load("cytof_spikein")
sample = load_cytof("021", 2)
shutil.rmtree("served", ignore_errors=True)
report = editor.export("served", format="both", name="neuronedit", version=1, verify=VERIFY)
print(report["path"], report["files"])
for artifact, figures in (report["parity"] or {}).items():
    print(f"  {artifact}: max abs difference to the Keras model {figures['max_abs']:.3g}")""",
        "#md ## Batch inference from the SavedModel and the TFLite file",
        """\
served = ServedEditor(report["path"])
keras_out = editor.transform(sample.values)
print("SavedModel vs Keras, max abs:", np.abs(served(sample.values) - keras_out).max())

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:
    Interpreter = tf.lite.Interpreter
runner = Interpreter(model_path=f"{report['path']}/model.tflite").get_signature_runner("serving_default")
tflite_out = runner(features=sample.values[:256].astype(np.float32))["edited"]
print("TFLite vs Keras, max abs:", np.abs(tflite_out - keras_out[:256]).max())""",
        "#md ## A REST request built from the signature\nThe body names the signature's input "
        "(`features`), columns in the model's order. TF Serving: `POST "
        "http://HOST:8501/v1/models/neuronedit:predict`.",
        """\
body = rest_request(report["path"], sample.to_frame().iloc[:N_ROWS])
print(json.dumps(body)[:300], "...")
print(models_config({"neuronedit": "/models/neuronedit"}))""",
        """\
class Predict(BaseHTTPRequestHandler):
    \"\"\"A stand-in for TF Serving's REST predict endpoint, backed by the SavedModel.\"\"\"

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        (rows,) = request["inputs"].values()
        answer = json.dumps({"outputs": served(np.asarray(rows, np.float32)).tolist()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Predict)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/v1/models/neuronedit:predict"
request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
outputs = np.asarray(json.loads(urllib.request.urlopen(request, timeout=30).read())["outputs"])
server.shutdown()
server.server_close()
print("REST answer vs Keras, max abs:", np.abs(outputs - keras_out[:N_ROWS]).max())
print(f"curl -d @body.json {url.replace('127.0.0.1:' + str(server.server_address[1]), 'HOST:8501')}")""",
    ],
)

NOTEBOOKS["06_studies"] = notebook(
    "06_studies", "Studies: many plates, one model",
    "A study is many batches (plates), each with the same anchor sample (a control aliquot) run "
    "beside that plate's samples. One study model corrects every plate into a reference plate; "
    "a plate that arrives later is added without training. We use the real CyTOF files that "
    "cytonormpy ships (3 plates x 2 donors; donor 1 is the anchor on every plate) with "
    "cytonormpy's own metadata table, in Python, on the command line, on cytonormpy's AnnData, "
    "and as one served graph.",
    "EPOCHS = 5             # training epochs (200 with early stopping for real use)\n"
    "HIDDEN = (64, 32, 16)  # the paper's network is (500, 250, 50)\n"
    "SEED = 0\n"
    "REFERENCE = \"1\"        # the plate every plate is corrected into (or \"mean\")\n"
    "VERIFY = False         # check the export in a fresh process (a few seconds)",
    [
        "#md ## The study as files: cytonormpy's metadata table\nOne row per file: "
        "`file_name` (relative to the table's folder), `reference` (`ref` for a plate's anchor "
        "file, `other` for a sample) and `batch`. Several anchor files of one plate are pooled.",
        """\
import numpy as np
import pandas as pd
from neuronedit_tf import NeuronEditor, metrics
from neuronedit_tf.data import read, read_metadata, write, write_cytof_study
from neuronedit_tf.data.datasets import cytof_markers

table = write_cytof_study("study_files")        # six FCS files, metadata.csv, markers.txt
print(table.read_text())
files = read_metadata(table)                     # checked: columns, roles, anchors, files
print(files, "| channels:", len(files.check_channels()))""",
        SCALE,
        "#md ## Two plates first, in Python\nOne autoencoder is trained on both plates' "
        "anchors and samples; each plate gets the edit from its anchor to the reference "
        "plate's anchor. The reference plate's own cells pass unchanged.",
        """\
markers = cytof_markers()
anchors, samples = files.anchors(), files.samples()
study = NeuronEditor(transform="arcsinh", cofactor=5, channels=markers, hidden=HIDDEN, seed=SEED,
                     strategy=strategy).fit_study(
    {b: anchors[b] for b in ("1", "2")}, reference=REFERENCE,
    samples={b: samples[b] for b in ("1", "2")}, epochs=EPOCHS, verbose=0)
print(study)
truth = samples[REFERENCE][0].select(markers)    # donor 2 on the reference plate


def emd(data):
    return metrics.mean_emd(scale(data.select(markers)), scale(truth))


corrected = study.transform(samples["2"][0], batch="2")
print(f"donor 2, plate 2 -> plate {REFERENCE}: EMD to the real file {emd(samples['2'][0]):.3f} "
      f"uncorrected, {emd(corrected):.3f} corrected")""",
        "#md ## A plate arrives later: `add_batch`\nThe autoencoder stays frozen; only plate 3's "
        "tables are fitted from its anchor (seconds). Every other plate's output stays bit for "
        "bit the same.",
        """\
before = study.transform(samples["2"][0], batch="2").values
study.add_batch("3", anchor=anchors["3"])
assert np.array_equal(study.transform(samples["2"][0], batch="2").values, before)
late = study.transform(samples["3"][0], batch="3")
print(study.batches, f"| donor 2, plate 3: {emd(samples['3'][0]):.3f} uncorrected, "
      f"{emd(late):.3f} corrected (its cells were never seen in training)")
try:
    study.transform(samples["3"][0], batch="4")
except Exception as error:                      # a batch the study does not know
    print(type(error).__name__, ":", error)""",
        "#md ## The same on the command line\n```bash\nneuronedit fit --metadata "
        "study_files/metadata.csv --reference-batch 1 --channels @study_files/markers.txt "
        "--transform arcsinh --cofactor 5 --model study/\nneuronedit apply --model study/ "
        "--metadata study_files/metadata.csv --out-dir normalized/\nneuronedit add-batch "
        "--model study/ --batch 4 --anchor plate4_control.fcs\n```\nHere we call the same "
        "command from Python. `apply` writes every file corrected as its own plate, in its "
        "own format, every keyword kept and the batch and reference recorded in `$COM`.",
        """\
import shutil
from neuronedit_tf.cli import main

shutil.rmtree("study", ignore_errors=True)
shutil.rmtree("normalized", ignore_errors=True)
hidden = ",".join(map(str, HIDDEN))
main(["fit", "--metadata", "study_files/metadata.csv", "--reference-batch", REFERENCE,
      "--channels", "@study_files/markers.txt", "--transform", "arcsinh", "--cofactor", "5",
      "--hidden", hidden, "--epochs", str(EPOCHS), "--seed", str(SEED), "--model", "study"])
main(["apply", "--model", "study", "--metadata", "study_files/metadata.csv",
      "--out-dir", "normalized"])
normalized = read("normalized/Gates_PTLG028_Unstim_Control_2.fcs")
print(normalized.text["com"][-160:])
print(f"donor 2, plate 2: EMD {emd(normalized):.3f} after `neuronedit apply`")""",
        "#md ## AnnData, the scanpy way\ncytonormpy's own AnnData (`X` is None; the values are "
        "in `layers[\"compensated\"]`): every cell corrected into the reference plate's frame, "
        "as a new layer.",
        """\
import neuronedit_tf as ne
from neuronedit_tf.data import load_cytof_adata

adata = load_cytof_adata()
corrected = ne.tl.edit_study(adata, batch_key="batch", anchor_key="reference", anchor="ref",
                             reference=REFERENCE, layer="compensated", channels=markers,
                             transform="arcsinh", cofactor=5, hidden=HIDDEN, seed=SEED,
                             fit_kwargs={"epochs": EPOCHS, "verbose": 0})
print(corrected)
print({k: v for k, v in corrected.uns["neuronedit"].items() if k != "params"})""",
        "#md ## One served graph for every plate\nThe export's `serving_default` takes the "
        "cells and each row's batch name; one request may mix plates, and an unknown plate "
        "fails the request. (On a cluster, `neuronedit_tf.beam.correct_files` runs this graph "
        "with Apache Beam's RunInference.)",
        """\
import tensorflow as tf

shutil.rmtree("served_study", ignore_errors=True)
report = study.export("served_study", format="saved_model", verify=VERIFY)
serve = tf.saved_model.load(report["path"]).signatures["serving_default"]
rows = np.concatenate([samples[b][0].select(markers).values[:2] for b in ("1", "2", "3")])
names = tf.constant([b"1", b"1", b"2", b"2", b"3", b"3"])
print(serve(features=tf.constant(rows), batch=names)["edited"].numpy()[:, :4])
try:
    serve(features=tf.constant(rows), batch=tf.constant([b"9"] * 6))
except tf.errors.InvalidArgumentError as error:
    print("refused:", str(error).splitlines()[0][:120])""",
    ],
)


def write_all(folder=HERE):
    """Write every notebook to ``folder``; returns the paths."""
    paths = []
    for name, nb in NOTEBOOKS.items():
        path = Path(folder) / f"{name}.ipynb"
        nbformat.validate(nb)
        path.write_text(nbformat.writes(nb) + "\n")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_all():
        print("wrote", written)
