"""``"knn_shift"`` and ``"latent_shift"``: each cell moves by the mean edit of spike-in cells.

``"knn_shift"`` is the authors' own variant of neuron editing (KrishnaswamyLab/NeuronTransform):
every neuron of the edited layer is mapped with the percentile maps adapted from ``E(S)`` to
``E(T)``, but a cell's code is not moved by its own per-neuron map value. It moves by the mean
of the per-neuron shifts ``NeuronEdit(E(s)) - E(s)`` of its ``k`` (default 50) nearest
spike-in cells ``s`` in the whole code space, then is decoded:
``X' = D(E(X) + mean_{s in N_k(E(X))} (NeuronEdit(E(s)) - E(s)))``. The shift depends on
where a cell lies in the code space (all neurons at once), not on each neuron's value alone:
a cell of another population takes the change of the spike-in cells most like it, and a
cell far from all of them the change of the nearest ones (not an extrapolated map). The
authors use each percentile bin's mid-point shift; here the map's own value (eq. 1), the
same up to the bin's slope. With ``k = 1`` a spike-in cell's own code moves exactly as under
``"paper"``.

``"latent_shift"`` takes every spike-in cell as a neighbour (one mean shift of the codes,
``Delta = mean_s (NeuronEdit(E(s)) - E(s))``, close to ``mean E(T) - mean E(S)``: latent
vector arithmetic, as scGen does on a VAE) and adds the decoded change to the input:
``X' = X + D(E(X) + Delta) - D(E(X))``, so the autoencoder's reconstruction error never
reaches the output, while the change still depends on the cell through the decoder. Where
a change learned on one population is applied to cells of another and the change mixes
channels, it transferred best of the edits measured (issue #19: spike-in cross-validation
and the cross-channel benchmark families); on the CyTOF batch effect, a per-channel
intensity change, the per-feature calibration of ``"gated"`` does better.

Both hold a seeded subsample of the spike-in codes (:class:`~neuronedit_tf.layers.ReferenceCodes`,
at most :data:`~neuronedit_tf.layers.DEFAULT_KNN_REFERENCE`) and send it through the graph's own
``NeuronEdit``, so the shifts are saved, loaded and exported with the map (TFLite builtins:
the neighbours are one matrix product and ``TopKV2``; a TFLite conversion folds the
references' edit into constants). Serving cost per row, beside the autoencoder's:
``"knn_shift"`` two products with the reference codes (``2 * m * width`` multiply-adds,
100,000 for 1,000 codes of 50 neurons) and a top-k over ``m`` scores; ``"latent_shift"``
a second pass of the decoder.

Example:
    >>> import numpy as np
    >>> from neuronedit_tf import NeuronEditor
    >>> rng = np.random.default_rng(0)
    >>> source = rng.normal(size=(400, 4)).astype("float32")
    >>> target = source + [1.0, 0.0, 0.0, 0.0]
    >>> editor = NeuronEditor(method="knn_shift", hidden=(16, 8)).fit(
    ...     source, target, epochs=2, verbose=0)
    >>> [layer.name for layer in editor.model_.layers[2:6]]
    ['encoder', 'reference_codes', 'neuron_edit', 'knn_shift']
    >>> same = NeuronEditor(method="latent_shift", hidden=(16, 8)).fit(
    ...     source, source, epochs=2, verbose=0)
    >>> bool(np.allclose(same.transform(source), source, atol=1e-4))  # no shift: the identity
    True
"""

from __future__ import annotations

import keras
import numpy as np

from neuronedit_tf.layers import DEFAULT_KNN_REFERENCE, DEFAULT_QUANTILES, KnnShift as Shift
from neuronedit_tf.layers import ReferenceCodes
from neuronedit_tf.methods.base import EditMethod
from neuronedit_tf.models import run

#: Neighbours per cell: the authors' K.
KNN = 50


class KnnShift(EditMethod):
    """``post(D(E(pre(x)) + shift))``, ``shift`` the mean edit of the cell's ``k`` nearest
    spike-in codes; with ``residual``, ``post(pre(x) + D(E + shift) - D(E))``. Tables only.

    Args:
        k: neighbours per cell (default :data:`KNN`), or None: every spike-in code.
        max_reference: spike-in codes kept (seeded subsample beyond it).
        residual: add the decoded change to the input instead of decoding the moved code.
    """

    name = "knn_shift"
    default_quantiles = DEFAULT_QUANTILES
    parts = ("reference_codes", "knn_shift")

    def __init__(self, k=KNN, max_reference=DEFAULT_KNN_REFERENCE, residual=False):
        self.k = None if k is None else int(k)
        self.max_reference = int(max_reference)
        self.residual = bool(residual)

    def adapt(self, pieces, edit, source, target, extrapolation="shift", seed=0, codes=None):
        """The reference codes: ``E(source)``, a subsample seeded ``seed`` beyond
        ``max_reference``; the neighbour layer (no state)."""
        reference = ReferenceCodes(self.max_reference, name="reference_codes")
        reference.adapt(self.codes(pieces, source, codes), seed=seed)
        return {"reference_codes": reference, "knn_shift": Shift(self.k, name="knn_shift")}

    def shifted(self, sample_shape, pieces, edit, parts):
        """``(features, latent, output)`` graph tensors: the input, ``E(pre(x))`` and the
        standardised output before ``post`` (the decoded moved code, or the residual)."""
        features = keras.Input(sample_shape, name="features")
        standardised = pieces.pre(features)
        latent = pieces.encoder(standardised)
        reference = parts["reference_codes"](latent)
        moved = parts["knn_shift"]([latent, reference, edit(reference)])
        decoded = pieces.decoder(moved)
        if self.residual:
            change = keras.layers.Subtract(name="decoded_change")([decoded,
                                                                   pieces.decoder(latent)])
            decoded = keras.layers.Add(name="residual_edit")([standardised, change])
        return features, latent, decoded

    def apply(self, pieces, edit, parts, standardised, codes=None):
        """The standardised output for standardised numpy rows (what the graph computes
        before ``post``), e.g. to adapt a layer that follows it (``codes``: their
        ``E``, when already computed)."""
        standardised = np.asarray(standardised, np.float32)
        codes = self.codes(pieces, standardised, codes)
        reference = parts["reference_codes"].reference.numpy()
        edited = run(edit, reference)
        # In chunks: each holds a (rows, references) score matrix.
        moved = np.concatenate([np.asarray(parts["knn_shift"]([codes[i : i + 8192], reference,
                                                               edited]))
                                for i in range(0, len(codes), 8192)] or [codes])
        decoded = run(pieces.decoder, moved)
        return standardised + decoded - run(pieces.decoder, codes) if self.residual else decoded

    def assemble(self, sample_shape, pieces, edit, parts, name="neuron_editor"):
        features, _, output = self.shifted(sample_shape, pieces, edit, parts)
        return keras.Model(features, pieces.post(output), name=name)


class LatentShift(KnnShift):
    """``post(pre(x) + D(E + Delta) - D(E))`` with ``E = E(pre(x))`` and ``Delta`` the mean
    edit of every spike-in code (:class:`KnnShift` with ``k=None``, residual). Tables only.

    Args:
        max_reference: spike-in codes whose mean shift is taken (seeded subsample beyond it).
    """

    name = "latent_shift"

    def __init__(self, max_reference=DEFAULT_KNN_REFERENCE):
        super().__init__(None, max_reference, residual=True)
