"""Table 1 analogue: an image edit learned on some classes, applied to others.

Images are scikit-learn's bundled ``load_digits`` (1,797 real 8x8 handwritten
digits, values 0-16). The edit is "thicker strokes": a 2x2 grey dilation
(``scipy.ndimage.grey_dilation``), known exactly for every image. It is learned
on digits 0-4 and applied to digits 5-9:

- source = a random half of the 0-4 images; target = the dilation of the other half;
- X = the 5-9 images; truth = the dilation of each X image.

Scores: per-image RMSE to the truth, the Fréchet distance between edited and
true images on the penultimate activations of a classifier trained here
(on original and dilated digits of a training split), and the share of edited
images the classifier still assigns to their digit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ImageCase:
    """Images ``(n, 8, 8, 1)`` in 0-16; ``labels_extra`` are X's digits."""

    source: np.ndarray
    target: np.ndarray
    extra: np.ndarray
    truth: np.ndarray
    labels_extra: np.ndarray


def thicken(images):
    """The edit: 2x2 grey dilation of each image (``(n, 8, 8[, 1])``)."""
    from scipy.ndimage import grey_dilation

    images = np.asarray(images, np.float32)
    size = (1, 2, 2) + (1,) * (images.ndim - 3)
    return grey_dilation(images, size=size).astype(np.float32)


def image_case(seed=0) -> ImageCase:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)[..., None]
    labels = digits.target
    rng = np.random.default_rng(seed)
    seen = rng.permutation(np.where(labels <= 4)[0])
    half = len(seen) // 2
    unseen = np.where(labels >= 5)[0]
    return ImageCase(
        source=images[seen[:half]], target=thicken(images[seen[half:]]),
        extra=images[unseen], truth=thicken(images[unseen]), labels_extra=labels[unseen],
    )


def train_classifier(seed=0, epochs=30):
    """A small dense classifier of digits (original and thickened), and its feature model.

    Returns ``(classifier, features)``: ``features`` maps images to the 64-unit
    penultimate activations used for the Fréchet distance.
    """
    import keras
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)[..., None]
    x = np.concatenate([images, thicken(images)]) / 16.0
    y = np.concatenate([digits.target, digits.target])
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Flatten()(inputs)
    hidden = keras.layers.Dense(128, activation="relu")(hidden)
    features = keras.layers.Dense(64, activation="relu", name="features")(hidden)
    outputs = keras.layers.Dense(10, activation="softmax")(features)
    classifier = keras.Model(inputs, outputs)
    classifier.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    classifier.fit(x, y, epochs=epochs, batch_size=64, verbose=0, shuffle=True)
    return classifier, keras.Model(inputs, features)


def score(case: ImageCase, predicted, classifier, features):
    from neuronedit_tf import metrics
    from neuronedit_tf.models import run

    predicted = np.asarray(predicted, np.float32).reshape(case.truth.shape)
    per_image = np.sqrt(((predicted - case.truth) ** 2).reshape(len(predicted), -1).mean(1))
    kept = run(classifier, predicted / 16.0).argmax(1) == case.labels_extra
    return {
        "rmse_per_image": float(per_image.mean()),
        "frechet": metrics.frechet_distance(run(features, predicted / 16.0),
                                            run(features, case.truth / 16.0)),
        "class_kept": float(kept.mean()),
    }


def image_grid(path, case: ImageCase, predictions: dict, n=8):
    """A figure like the paper's Figure 2: rows = original, truth, then each method."""
    from neuronedit_tf.data.atomic import atomic_path
    from neuronedit_tf.plotting import pyplot

    plt = pyplot()
    rows = [("X (unseen digits)", case.extra), ("truth: thickened", case.truth)]
    rows += [(name, np.asarray(p).reshape(case.truth.shape)) for name, p in predictions.items()]
    pick = np.linspace(0, len(case.extra) - 1, n).astype(int)
    figure, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 1.0))
    for r, (name, images) in enumerate(rows):
        for c, i in enumerate(pick):
            axes[r, c].imshow(images[i, ..., 0], cmap="gray_r", vmin=0, vmax=16)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    plt.close(figure)


#: The paper's Table 1 (FID on CelebA, mean ± sd) for reference; ours is a classifier
#: Fréchet distance on digits, so only the ranking is comparable.
PAPER_TABLE_1 = {"neuron editing": "121.63", "GAN": "282.26 ± 13.32", "CycleGAN": "153.03",
                 "ResnetGAN": "184.31 ± 9.71", "RegAE": "272.12", "constant shift": "320.97"}
METRICS = ("rmse_per_image", "frechet", "class_kept")
#: Comparison methods that take images (the registry's others work on tables only).
IMAGE_METHODS = ("none", "train_mean", "mean_shift", "quantile_map", "constant_shift",
                 "pca_edit", "regae", "gan", "cyclegan", "resnetgan")


def run(out_dir, *, quick=False, seeds=(0,), epochs=40, network_epochs=40, log=print,
        command="neuronedit bench images"):
    """The Table 1 analogue: every image method on the digits case; returns a ``Section``.

    Args:
        out_dir: folder for the figure grid.
        quick: a tiny configuration (2 epochs, three methods) for the test suite.
        seeds: seeds of the trained methods (deterministic ones run once).
        epochs: epochs of neuron editing's conv autoencoder (early stopping may end sooner).
        network_epochs: epochs of the trained comparison methods.
        log: progress messages.
        command: the command written into the section.
    """
    import time
    from pathlib import Path

    from neuronedit_tf.bench import report

    started = time.time()
    if quick:
        epochs, network_epochs, seeds = 2, 2, tuple(seeds)[:1]
    case = image_case(seed=0)
    log("images: classifier ...")
    classifier, features = train_classifier(seed=0, epochs=3 if quick else 30)
    clean = score(case, case.truth, classifier, features)
    methods = {"neuron editing (paper, conv)": report.editor_factory(seeds, model="conv")}
    names = ("none", "mean_shift") if quick else IMAGE_METHODS
    methods.update(report.comparison_methods(
        names, seeds=seeds, network={"epochs": network_epochs, "model": "conv"}))
    fit = {name: {"epochs": epochs, "verbose": 0} for name in methods if name.startswith("neuron")}
    rows, predictions = [], {}
    for name, factory in methods.items():
        log(f"images: {name} ...")
        rows += report.run_methods(case, {name: factory}, fit,
                                   lambda p: score(case, p, classifier, features), seeds,
                                   predictions)
    summary = report.summarise(rows, METRICS)
    figure = "images_grid.png"
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    shown = {k: v for k, v in predictions.items() if k in (
        "neuron editing (paper, conv)", "constant_shift", "pca_edit", "cyclegan", "mean_shift")}
    image_grid(Path(out_dir) / figure, case, shown)
    paper = "\n".join(f"| {name} | {fid} |" for name, fid in PAPER_TABLE_1.items())
    markdown = f"""
scikit-learn's bundled digits (1,797 real 8×8 images). The edit is "thicker strokes" (a 2×2
grey dilation), learned on digits 0–4 (source: {len(case.source)} images; target: the dilation
of {len(case.target)} others) and applied to the {len(case.extra)} images of digits 5–9, whose
dilation is the per-image truth (see `neuronedit_tf/bench/images.py`). Neuron editing uses the
paper's conv autoencoder and setting (`method="paper"`, up to {epochs} epochs, early stopping);
the trained comparison methods use the same conv networks for {network_epochs} epochs. Seeds:
{", ".join(map(str, seeds))}.

Metrics: per-image RMSE to the truth (0–16 pixel scale) ↓; Fréchet distance between edited and
true images on the 64-unit penultimate layer of a dense classifier trained here on original and
dilated digits ↓; share of edited images the classifier still assigns to their digit ↑ (the
truth itself scores {clean["class_kept"]:.3f}).

{report.markdown_table(summary, ["method", *METRICS, "fit+transform s"])}

Best by each metric (mean over seeds):

{report.leaders(rows, {"rmse_per_image": "lower", "frechet": "lower", "class_kept": "higher"})}

![X, truth and edits of unseen digits]({figure})

The paper's Table 1 (FID on CelebA, its own data; only the ranking is comparable):

| method | FID |
|---|---|
{paper}
"""
    return report.Section(name="images", title="Images (Table 1 analogue)", markdown=markdown,
                          figures=[figure], seconds=time.time() - started,
                          command=command + (" --quick" if quick else ""))
