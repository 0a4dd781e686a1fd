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
    from neuronedit_tf.plotting import _pyplot

    plt = _pyplot()
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
