"""The "knn_shift" and "latent_shift" methods: each cell's code moves by the mean edit of its
k nearest spike-in codes (the authors' NeuronTransform variant), or of all of them with the
decoded change added to the input; one graph that saves, loads and exports."""

import keras
import numpy as np
import pytest

from neuronedit_tf import NeuronEditError, NeuronEditor, methods, models
from neuronedit_tf.layers import KnnShift, NeuronEdit, ReferenceCodes
from neuronedit_tf.methods.knn_shift import KnnShift as KnnMethod
from neuronedit_tf.methods.knn_shift import LatentShift


@pytest.fixture(scope="module")
def pair():
    """Two populations in S; T is S after a change that mixes features; X another population."""
    rng = np.random.default_rng(0)
    source = np.concatenate([rng.normal(0.0, 1.0, (150, 4)),
                             rng.normal(3.0, 0.5, (150, 4))]).astype(np.float32)
    mix = np.float32([[1.0, 0.3, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0],
                      [0.0, 0.0, 1.2, 0.2], [0.0, 0.0, 0.0, 1.0]])
    target = source @ mix + np.float32([0.5, 0.0, 0.0, -0.5])
    extra = rng.normal(1.5, 1.0, (200, 4)).astype(np.float32)
    return source, target, extra


@pytest.fixture(scope="module")
def fitted(pair):
    source, target, extra = pair
    return {method: NeuronEditor(method=method, hidden=(16, 8), seed=0).fit(
                source, target, extra=extra, epochs=3, verbose=0)
            for method in ("knn_shift", "latent_shift", "gated_shift")}


def _pieces(editor):
    return methods.Pieces(*(editor.part(name) for name in
                            ("preprocessing", "encoder", "decoder", "postprocessing")))


def _codes(editor, raw):
    return models.run(editor.part("encoder"), models.run(editor.part("preprocessing"), raw))


# ------------------------------------------------------------------------------ the layers
def test_knn_shift_is_the_mean_shift_of_the_k_nearest_references():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(300, 6)).astype(np.float32)
    moved = reference + rng.normal(size=(300, 6)).astype(np.float32)
    codes = rng.normal(size=(80, 6)).astype(np.float32) * 1.5
    k = 7
    distance = np.linalg.norm(codes[:, None].astype(np.float64) - reference[None], axis=2)
    order = np.sort(distance, axis=1)
    # Rows whose k-th and (k+1)-th nearest are far apart next to float32 rounding, so the
    # neighbours are the same whichever order the products are summed in.
    clear = order[:, k] - order[:, k - 1] > 1e-3
    assert clear.sum() > 60
    nearest = np.argsort(distance, axis=1)[:, :k]
    expected = codes + (moved - reference)[nearest].mean(axis=1)
    got = KnnShift(k=k)([codes, reference, moved]).numpy()
    np.testing.assert_allclose(got[clear], expected[clear], rtol=1e-5, atol=1e-5)


def test_knn_shift_with_k_at_least_the_references_moves_every_row_by_the_mean_shift():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(40, 3)).astype(np.float32)
    moved = reference * 2.0 + 1.0
    codes = rng.normal(size=(10, 3)).astype(np.float32) * 10.0
    for k in (40, 100, None):
        got = KnnShift(k=k)([codes, reference, moved]).numpy()
        np.testing.assert_allclose(got, codes + (moved - reference).mean(0), rtol=1e-5,
                                   atol=1e-5)


def test_knn_shift_includes_every_reference_tied_with_the_kth_nearest():
    reference = np.float32([[1.0], [-1.0], [5.0]])  # 1 and -1 tie for the nearest to 0
    moved = reference + np.float32([[2.0], [4.0], [100.0]])
    got = KnnShift(k=1)([np.zeros((1, 1), np.float32), reference, moved]).numpy()
    assert got.tolist() == [[3.0]]  # the mean of both tied shifts, whichever order they are in


def test_reference_codes_keep_a_seeded_subsample_and_refuse_bad_codes():
    codes = np.arange(200, dtype=np.float32).reshape(100, 2)
    first, again = ReferenceCodes(max_reference=30), ReferenceCodes(max_reference=30)
    first.adapt(codes, seed=3)
    again.adapt(codes, seed=3)
    kept = first(codes).numpy()
    assert kept.shape == (30, 2) and np.array_equal(kept, again(codes).numpy())
    assert set(map(tuple, kept)) <= set(map(tuple, codes))
    with pytest.raises(NeuronEditError, match="finite codes"):
        ReferenceCodes().adapt(np.float32([[np.nan, 1.0]]))
    with pytest.raises(NeuronEditError, match="k >= 1"):
        KnnShift(k=0)


# ------------------------------------------------------------------------------ the methods
def test_the_knn_methods_are_registered_with_the_papers_knots():
    assert {"knn_shift", "latent_shift"} <= set(methods.names())
    assert methods.default_name() == "gated"  # a candidate, not the default
    assert methods.default_quantiles("knn_shift") == tuple(float(q) for q in range(101))
    assert not methods.get("knn_shift").handles_images


def test_with_k_1_a_spike_in_cell_moves_exactly_as_under_the_papers_edit(fitted, pair):
    """Each spike-in code's own shift is NeuronEdit(E(s)) - E(s), its one nearest reference
    is itself: on S, knn_shift with k = 1 is the paper's D(NeuronEdit(E(S)))."""
    editor = fitted["knn_shift"]
    source = pair[0]
    edit, reference = editor.part("neuron_edit"), editor.part("reference_codes")
    assert reference.reference.shape == (len(source), 8)  # every spike-in code is a reference
    one = KnnMethod(k=1).assemble((4,), _pieces(editor), edit, {
        "reference_codes": reference, "knn_shift": KnnShift(1)})
    paper = methods.get("paper").assemble((4,), _pieces(editor), edit, {})
    np.testing.assert_allclose(models.run(one, source), models.run(paper, source),
                               rtol=1e-4, atol=1e-4)
    # The default k = 50 averages the neighbours' shifts: not the paper's edit.
    assert np.abs(editor.transform(source) - models.run(paper, source)).max() > 1e-2


def test_with_k_every_reference_every_cell_moves_by_the_mean_code_shift(fitted, pair):
    editor = fitted["knn_shift"]
    source, _, extra = pair
    edit = editor.part("neuron_edit")
    codes = _codes(editor, source)
    shift = (models.run(edit, codes) - codes).mean(0)
    every = KnnMethod(k=len(source)).assemble((4,), _pieces(editor), edit, {
        "reference_codes": editor.part("reference_codes"), "knn_shift": KnnShift(len(source))})
    expected = models.run(editor.part("postprocessing"), models.run(
        editor.part("decoder"), _codes(editor, extra) + shift))
    np.testing.assert_allclose(models.run(every, extra), expected, rtol=1e-4, atol=1e-4)


def test_a_cell_far_from_the_spike_ins_takes_its_nearest_spike_ins_shift(fitted, pair):
    """Not the per-neuron map extrapolated: the code moves by the mean shift of the spike-in
    codes nearest to it, whatever its own values."""
    editor = fitted["knn_shift"]
    source = pair[0]
    far = source[:5] * 4.0 + 20.0
    codes, far_codes = _codes(editor, source), _codes(editor, far)
    shifts = models.run(editor.part("neuron_edit"), codes) - codes
    distance = np.linalg.norm(far_codes[:, None] - codes[None], axis=2)
    nearest = np.argsort(distance, axis=1)[:, :50]
    expected = models.run(editor.part("postprocessing"), models.run(
        editor.part("decoder"), far_codes + shifts[nearest].mean(1)))
    np.testing.assert_allclose(editor.transform(far), expected, rtol=1e-3, atol=1e-3)


def test_latent_shift_adds_the_decoded_mean_code_shift_to_the_input(fitted, pair):
    """X + D(E(X) + Delta) - D(E(X)), Delta the mean of NeuronEdit(E(s)) - E(s) over S."""
    editor = fitted["latent_shift"]
    source, _, extra = pair
    pre, post, decoder = (editor.part(n) for n in ("preprocessing", "postprocessing", "decoder"))
    spike_in = _codes(editor, source)
    delta = (models.run(editor.part("neuron_edit"), spike_in) - spike_in).mean(0)
    codes = _codes(editor, extra)
    expected = models.run(post, models.run(pre, extra) + models.run(decoder, codes + delta)
                          - models.run(decoder, codes))
    np.testing.assert_allclose(editor.transform(extra), expected, rtol=1e-4, atol=1e-4)
    assert np.abs(delta).max() > 0.05  # a real shift: the test can tell the edit from none
    # With no shift between S and T, the residual form is the identity (reconstruction error
    # never reaches the output).
    same = NeuronEditor(method="latent_shift", hidden=(16, 8), seed=0).fit(
        source, source, epochs=2, verbose=0)
    np.testing.assert_allclose(same.transform(extra), extra, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["knn_shift", "latent_shift", "gated_shift"])
def test_knn_methods_save_load_and_export_through_tflite_builtins(fitted, pair, method,
                                                                  tmp_path):
    editor = fitted[method]
    extra = pair[2]
    loaded = NeuronEditor.load(editor.save(tmp_path / "editor"))
    assert loaded.method == method
    # The same graph and weights: the same computation, so bit for bit.
    np.testing.assert_array_equal(loaded.transform(extra), editor.transform(extra))
    # SavedModel, saved_model_cli and TFLite with builtin ops only, checked in a fresh process
    # (the export's own verification raises beyond its tolerance).
    report = loaded.export(tmp_path / "served", format="both", sample=extra[:64])
    assert report["parity"]["model.tflite"]["max_error"] < 1e-4


def test_gated_shift_calibrates_inside_the_spike_ins_support_and_is_latent_shift_outside(
        fitted, pair):
    editor = fitted["gated_shift"]
    source = pair[0]
    gate = editor.part("support_gate")
    pre, post = editor.part("preprocessing"), editor.part("postprocessing")
    latent = LatentShift().assemble((4,), _pieces(editor), editor.part("neuron_edit"), {
        "reference_codes": editor.part("reference_codes"),
        "knn_shift": editor.part("knn_shift")})  # the same autoencoder and shift, ungated
    # Weight 1 (most spike-in cells lie within their own support): the calibrated latent shift.
    inside = gate.weight(_codes(editor, source)).numpy()[:, 0] == 1.0
    assert inside.mean() > 0.5
    residual = models.run(pre, models.run(latent, source[inside]))
    calibrated = models.run(post, models.run(editor.part("calibration"), residual))
    np.testing.assert_allclose(editor.transform(source[inside]), calibrated, rtol=1e-4,
                               atol=1e-4)
    assert np.abs(calibrated - models.run(latent, source[inside])).max() > 0.05
    # Weight 0, far outside: the residual latent shift alone.
    far = source[:20] * 5.0 + 30.0
    assert np.all(gate.weight(_codes(editor, far)).numpy() == 0.0)
    np.testing.assert_allclose(editor.transform(far), models.run(latent, far), rtol=1e-4,
                               atol=1e-4)


def test_the_reference_codes_are_a_subsample_of_the_spike_ins_beyond_max_reference(pair):
    source, target, _ = pair
    editor = NeuronEditor(method="knn_shift", hidden=(16, 8), seed=0).fit(
        source, target, epochs=1, verbose=0)
    small = KnnMethod(k=5, max_reference=40)
    pieces = _pieces(editor)
    standardised = models.run(pieces.pre, source)
    parts = small.adapt(pieces, editor.part("neuron_edit"), standardised,
                        models.run(pieces.pre, target), seed=0)
    kept = parts["reference_codes"].reference.numpy()
    codes = _codes(editor, source)
    assert kept.shape == (40, 8)
    assert all(np.any(np.all(codes == row, axis=1)) for row in kept)
    latent = LatentShift()
    assert latent.k is None and latent.residual and not KnnMethod().residual
