"""The recipes that trained the zoo's presets: ``neuronedit zoo train NAME --out FOLDER``.

Each recipe fits a :class:`~neuronedit_tf.editor.NeuronEditor` on its benchmark's
real data, scores it there, and returns the editor, the metadata (training data,
metrics) and the model card's body; :func:`train` saves them as a preset with
:func:`neuronedit_tf.zoo.save`. The zoo itself only saves, lists, pulls and loads.

Retrain a shipped preset (this is the command written into its metadata)::

    neuronedit zoo train cytof_spikein --out neuronedit_tf/zoo_presets/cytof_spikein --overwrite
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from neuronedit_tf import zoo
from neuronedit_tf.errors import NeuronEditError


def _command(name, out, epochs, overwrite):
    parts = ["neuronedit zoo train", name, "--out", str(out)]
    if epochs is not None:
        parts += ["--epochs", str(epochs)]
    if overwrite:
        parts.append("--overwrite")
    return " ".join(parts)


def train_cytof_spikein(epochs=None, seed=0, verbose="auto"):
    """The demo's case: spike-ins donor 1, batch 021 -> 028; sample donor 2 in 021."""
    from neuronedit_tf.data.datasets import CYTONORMPY, load_cytof
    from neuronedit_tf.demo import COFACTOR, run_demo
    from neuronedit_tf.editor import NeuronEditor

    epochs = 200 if epochs is None else epochs
    source, target, sample = load_cytof("021", 1), load_cytof("028", 1), load_cytof("021", 2)
    editor = NeuronEditor(transform="arcsinh", cofactor=COFACTOR, seed=seed)
    editor.fit(source, target, extra=sample, epochs=epochs, verbose=verbose)
    with tempfile.TemporaryDirectory() as scratch:
        result = run_demo(scratch, editor=editor, seed=seed)
    metrics = {k: float(result[k]) for k in ("r", "emd_edited", "emd_uncorrected", "emd_floor")}
    files = {"source": "Gates_PTLG021_Unstim_Control_1.fcs (donor 1, batch 021)",
             "target": "Gates_PTLG028_Unstim_Control_1.fcs (donor 1, batch 028)",
             "extra": "Gates_PTLG021_Unstim_Control_2.fcs (donor 2, batch 021)",
             "truth (scoring only)": "Gates_PTLG028_Unstim_Control_2.fcs (donor 2, batch 028)"}
    data = {"kind": "real mass cytometry (CyTOF), 1000 cells x 37 markers per file",
            "artifact": f"{CYTONORMPY.name}=={CYTONORMPY.version} wheel "
                        f"({CYTONORMPY.filename}, sha256 {CYTONORMPY.sha256}), "
                        "cytonormpy/_resources/*.fcs and coding_detectors.txt",
            "files": files, "epochs_max": epochs,
            "epochs_run": len((editor.history_ or {}).get("loss", [])) or None}
    card = (
        "A dense neuron editor (the paper's 500-250-50 autoencoder, LeakyReLU) that moves CyTOF "
        "cells from batch 021 to batch 028 of the cytonormpy files: exactly the case of "
        "`neuronedit demo`, which uses it with `--preset` to skip training.\n\n"
        "Metrics are on the arcsinh(x/5) scale: `r` is the paper's Pearson r between the spike-in's "
        "per-marker median change and the change applied to the sample; `emd_*` are mean per-marker "
        "earth mover's distances to the real batch-028 file of donor 2 (edited, uncorrected, and the "
        "sampling floor of two halves of that file).\n\n"
        "Use it on cells of the same panel (the 37 marker channels, by name) measured in batch 021; "
        "it learned one specific plate-to-plate batch effect and knows nothing else.")
    return editor, {"data": data, "metrics": metrics, "benchmark": "neuronedit demo case"}, card


DIGITS_FILTERS = (16, 32, 64)


def train_digits_thicken(epochs=None, seed=0, verbose="auto"):
    """Images: learn 'thicker strokes' on digits 0-4, apply to 5-9 (bench/images.py)."""
    import keras

    from neuronedit_tf.bench import images
    from neuronedit_tf.editor import NeuronEditor
    from neuronedit_tf.models import conv_autoencoder

    epochs = 60 if epochs is None else epochs
    case = images.image_case(seed=seed)
    keras.utils.set_random_seed(seed)
    model = conv_autoencoder((8, 8, 1), filters=DIGITS_FILTERS, seed=seed)
    editor = NeuronEditor(model=model, seed=seed)
    editor.fit(case.source, case.target, extra=case.extra, epochs=epochs, verbose=verbose)
    classifier, features = images.train_classifier(seed=seed)
    metrics = images.score(case, editor.transform(case.extra), classifier, features)
    unedited = images.score(case, case.extra, classifier, features)
    metrics.update({f"{k}_unedited": v for k, v in unedited.items()})
    import sklearn

    data = {"kind": "real handwritten digits, 8x8, values 0-16",
            "artifact": f"scikit-learn {sklearn.__version__} bundled load_digits (1,797 images)",
            "split": "source: a seeded half of digits 0-4; target: the 2x2 grey dilation of the "
                     "other half; extra (X): digits 5-9; truth: the dilation of X",
            "epochs_max": epochs,
            "epochs_run": len((editor.history_ or {}).get("loss", [])) or None}
    card = (
        "A convolutional neuron editor (stride-2 4x4 convolutions) that thickens handwritten "
        "strokes: learned on digits 0-4 (before/after a 2x2 grey dilation) and applied to "
        f"digits 5-9, which it never saw dilated. To stay small it uses filters {DIGITS_FILTERS} "
        "instead of the paper's (64, 128, 256).\n\n"
        "Metrics: per-image RMSE to the true dilation (0-16 pixel scale), the Fréchet distance on "
        "a small digit classifier's 64-unit features, and the share of edited images that keep "
        "their digit's class; `*_unedited` are the same for the unedited X.")
    return editor, {"data": data, "metrics": metrics, "benchmark": "neuronedit_tf.bench.images"}, card


RECIPES = {
    "cytof_spikein": (train_cytof_spikein,
                      "Dense editor: CyTOF batch 021 -> 028 from donor-1 spike-ins (the demo's case)"),
    "digits_thicken": (train_digits_thicken,
                       "Conv editor: thicker strokes learned on digits 0-4, applied to 5-9"),
}


def train(name, out, epochs=None, seed=0, overwrite=False, verbose="auto"):
    """Retrain a preset from its recipe and save it to ``out``; returns its metadata.

    Training the shipped folder (``out`` = ``neuronedit_tf/zoo_presets/NAME``)
    also rewrites the registry (both copies of ``index.json``).
    """
    if name not in RECIPES:
        raise NeuronEditError(f"No recipe for {name!r}; recipes: {', '.join(RECIPES)}.")
    recipe, description = RECIPES[name]
    started = time.time()
    editor, metadata, card = recipe(epochs=epochs, seed=seed, verbose=verbose)
    metadata["command"] = _command(name, out, epochs, overwrite)
    metadata["train_seconds"] = round(time.time() - started, 1)
    path = zoo.save(editor, out, name, description, metadata=metadata, card=card,
                    overwrite=overwrite)
    if Path(out).resolve().parent == zoo.PRESETS_DIR:
        zoo.write_index()
    return zoo.info(path)["metadata"]
