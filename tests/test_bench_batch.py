"""bench.batch: the quick configuration writes its figures and a Section with sane numbers."""

import numpy as np
import pytest

from neuronedit_tf import metrics, models
from neuronedit_tf.bench import batch, cases
from neuronedit_tf.bench.cases import cytof_cases, processing_cases, spillover_cases
from neuronedit_tf.errors import NeuronEditError


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    return out, batch.run(out, quick=True, log=lambda message: None)


def test_section_and_figures(quick):
    out, section = quick
    assert section.name == "batch"
    assert section.figures == ["batch_emd.png", "batch_histogram.png"]
    for name in section.figures:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = section.render()
    assert "### CyTOF spike-in cases" in text and "### Cross-channel cases" in text
    assert "### Processing cases" in text and "CD45dim → Bcells" in text
    assert "neuronedit bench batch" in section.command
    assert not list(out.glob(".*.part"))  # atomic writes left nothing behind


def test_no_correction_emd_equals_an_independent_computation(quick):
    _, section = quick
    case = next(iter(cytof_cases()))
    [row] = [r for r in section.rows if r["case"] == case.name and r["method"] == "none"]
    # Computed here without the package's metrics: scipy's 1-D Wasserstein per marker.
    from scipy.stats import wasserstein_distance

    x = np.arcsinh(case.sample.values.astype(np.float64) / 5)
    y = np.arcsinh(case.truth.values.astype(np.float64) / 5)
    expected = np.mean([wasserstein_distance(x[:, k], y[:, k]) for k in range(x.shape[1])])
    assert row["emd"] == pytest.approx(expected, rel=1e-9)
    assert f"{expected:.3f}" in section.markdown


def test_numbers_are_finite_and_sane(quick):
    _, section = quick
    methods = {r["method"] for r in section.rows}
    assert {"none", "mean_shift", "quantile_map", "neuron editing (paper)",
            "neuron editing (calibrated)", "neuron editing (gated)"} <= methods
    for row in section.rows:
        assert np.isfinite(row["emd"]) and row["emd"] >= 0
        if row["method"] != "none":
            assert -1 <= row["r"] <= 1
        assert np.isfinite(row["rmse"]) == row["case"].startswith(("spillover", "processing"))
    assert {r["case"] for r in section.rows} == {
        "cytof_021to028_spike1", "spillover_Bcells_to_other", "processing_CD45dim_to_Bcells"}
    cytof = {r["method"]: r for r in section.rows if r["case"].startswith("cytof")}
    # The per-feature quantile map fitted on the spike-ins moves the sample toward the truth.
    assert cytof["quantile_map"]["emd"] < cytof["none"]["emd"]
    spill = {r["method"]: r for r in section.rows if r["case"].startswith("spillover")}
    case = next(iter(spillover_cases()))
    none = metrics.rmse(case.scale(case.sample), case.scale(case.truth))
    assert spill["none"]["rmse"] == pytest.approx(none)
    # The processing case is scored on its logicle values as they are (no arcsinh on top).
    proc = {r["method"]: r for r in section.rows if r["case"].startswith("processing")}
    case = next(processing_cases())
    difference = case.sample.values.astype(np.float64) - case.truth.values
    assert proc["none"]["rmse"] == pytest.approx(np.sqrt(np.mean(difference ** 2)), rel=1e-9)


# ------------------------------------------------------------------ the processing family
@pytest.fixture(scope="module")
def processing():
    """The file's events and populations, and the 3 cases drawn twice with seed 0, once with 1."""
    events = cases.processing_events()
    return (events, list(processing_cases(n_cells=300)), list(processing_cases(n_cells=300)),
            list(processing_cases(n_cells=300, seed=1)))


def test_processing_populations_partition_the_file(processing):
    (data, raw, spill, populations), *_ = processing
    assert raw.shape == (83411, 8) and data.channels == ["FITC-A", "PE-A", "PerCP-A", "PE-Cy7-A",
                                                         "PacificBlue-A", "APC-A", "Alexa700-A",
                                                         "APC-Cy7-A"]
    assert list(populations) == list(cases.PROCESSING_POPULATIONS)
    rows = np.concatenate(list(populations.values()))
    # Disjoint and together every event; each population large enough for the default cases.
    assert len(rows) == len(np.unique(rows)) == len(raw)
    assert min(len(r) for r in populations.values()) > 3000
    # The gates, read back: B cells are CD19-bright after compensation, the others are not.
    shown = cases.processing_change(raw, spill)
    cd19 = shown[:, data.channels.index("APC-A")]
    assert cd19[populations["Bcells"]].min() > cases.PROCESSING_GATES["CD19"]
    assert cd19[populations["granulocytes"]].max() <= cases.PROCESSING_GATES["CD19"]


def test_processing_cases_shapes_and_disjoint_cells(processing):
    (data, raw, spill, populations), first, _, _ = processing
    assert [c.name for c in first] == ["processing_CD45dim_to_Bcells",
                                       "processing_CD45dim_to_granulocytes",
                                       "processing_CD45dim_to_CD45bright"]
    for case in first:
        learn, apply = case.name.split("_", 1)[1].split("_to_")
        assert case.paired and case.settings == {"transform": "none"}
        assert case.source.channels == data.channels and case.source.markers[5] == "CD19"
        for part in (case.source, case.target, case.sample, case.truth):
            assert part.values.shape == (300, 8) and part.values.dtype == np.float32
        s, t, x = (case.events[k] for k in ("source", "target", "sample"))
        # S and T: different cells of the learn population; X: cells of the apply population.
        assert len(set(s) | set(t)) == 600
        assert set(s) | set(t) <= set(populations[learn])
        assert len(set(x)) == 300 and set(x) <= set(populations[apply])


def test_processing_truth_is_the_processed_sample_exactly(processing):
    (data, raw, spill, populations), first, _, _ = processing
    for case in first:
        # The same computation on the same rows: bit for bit.
        rows = case.events
        np.testing.assert_array_equal(case.source.values, cases.logicle_scale(raw[rows["source"]]))
        np.testing.assert_array_equal(case.sample.values, cases.logicle_scale(raw[rows["sample"]]))
        np.testing.assert_array_equal(case.target.values,
                                      cases.processing_change(raw[rows["target"]], spill))
        np.testing.assert_array_equal(case.truth.values,
                                      cases.processing_change(raw[rows["sample"]], spill))
    # Independently: the truth, back off the logicle scale and through the spillover matrix, is
    # the raw events again (tolerance: float32 logicle values of values up to 2.6e5).
    case = first[0]
    compensated = np.asarray(models.Logicle(inverse=True)(case.truth.values), np.float64)
    np.testing.assert_allclose(compensated @ spill, raw[case.events["sample"]], rtol=2e-3,
                               atol=2.0)


def test_processing_change_is_not_per_channel(processing):
    _, first, _, _ = processing
    for case in first:
        x, y = case.sample.values.astype(np.float64), case.truth.values.astype(np.float64)
        # The best per-channel monotone map there is, fitted on these very cells and their
        # truth (the i-th smallest value of X -> the i-th smallest of the truth, per channel),
        # leaves more than 40% of the error: each channel's change depends on the others.
        best = np.empty_like(x)
        for j in range(x.shape[1]):
            best[np.argsort(x[:, j]), j] = np.sort(y[:, j])
        assert metrics.rmse(best, y) > 0.4 * metrics.rmse(x, y)


def test_processing_cases_are_seeded(processing):
    _, first, again, other = processing
    for a, b, c in zip(first, again, other):
        for key in ("source", "target", "sample"):
            np.testing.assert_array_equal(a.events[key], b.events[key])
            assert not np.array_equal(a.events[key], c.events[key])
        np.testing.assert_array_equal(a.truth.values, b.truth.values)


def test_processing_cases_refuse_bad_requests():
    with pytest.raises(NeuronEditError, match="two different populations"):
        next(processing_cases(pairs=[("Bcells", "monocytes")]))
    with pytest.raises(NeuronEditError, match="two different populations"):
        next(processing_cases(pairs=[("Bcells", "Bcells")]))
    with pytest.raises(NeuronEditError, match="Too few events"):
        next(processing_cases(n_cells=20000))


# ------------------------------------------------------------------ the spillover family
def test_spillover_factor_default_is_the_benchmarked_change():
    default, explicit = (list(spillover_cases(n_cells=300, **kw))
                         for kw in ({}, {"factor": cases.SPILL_FACTOR}))
    assert [c.name for c in default] == ["spillover_Bcells_to_other", "spillover_other_to_Bcells"]
    data = cases.read_fcs(cases.facs_diva_bytes())
    _, spill = cases.spillover_matrix(data)
    for a, b in zip(default, explicit):
        assert a.name == b.name and a.description == b.description
        assert f"x{cases.SPILL_FACTOR}," in a.description
        for part in ("source", "target", "sample", "truth"):
            np.testing.assert_array_equal(getattr(a, part).values, getattr(b, part).values)
        # The same computation on the same rows (S and X are the raw events): bit for bit.
        np.testing.assert_array_equal(
            a.truth.values,
            cases.instrument_change(a.sample.values.astype(np.float64), spill).astype(np.float32))


def test_spillover_factor_scales_the_off_diagonals_only():
    default = list(spillover_cases(n_cells=300))
    strong = list(spillover_cases(n_cells=300, factor=2.0))
    assert [c.name for c in strong] == ["spillover_x2_Bcells_to_other",
                                        "spillover_x2_other_to_Bcells"]
    data = cases.read_fcs(cases.facs_diva_bytes())
    _, spill = cases.spillover_matrix(data)
    for a, b in zip(default, strong):
        assert "x2.0," in b.description
        # The same events are drawn; only instrument B's side changes.
        np.testing.assert_array_equal(a.source.values, b.source.values)
        np.testing.assert_array_equal(a.sample.values, b.sample.values)
        assert not np.allclose(a.truth.values, b.truth.values)
        assert not np.allclose(a.target.values, b.target.values)
        raw = b.sample.values.astype(np.float64)
        np.testing.assert_array_equal(
            b.truth.values,
            cases.instrument_change(raw, spill, factor=2.0).astype(np.float32))
        # Linear in the factor: with unit gains the change of raw values at factor 2.0 is
        # twice that at 1.5 (B - I = factor (A - I)); factor 1 with unit gains is no change.
        # Tolerance: float64 solves of a different right-hand side (not the same computation).
        ones = np.ones(raw.shape[1])
        one = cases.instrument_change(raw, spill, factor=1.0, gains=ones)
        np.testing.assert_allclose(one, raw, rtol=1e-9, atol=1e-6)
        change = {f: cases.instrument_change(raw, spill, factor=f, gains=ones) - raw
                  for f in (1.5, 2.0)}
        assert np.abs(change[1.5]).max() > 1.0
        np.testing.assert_allclose(change[2.0], 2 * change[1.5], rtol=1e-9, atol=1e-6)
    for bad in (0, -1.5, float("nan"), "strong"):
        with pytest.raises(NeuronEditError, match="positive number"):
            next(spillover_cases(n_cells=300, factor=bad))


def test_case_scale_and_settings_follow_its_transform():
    case = next(processing_cases(n_cells=200))
    np.testing.assert_array_equal(case.scale(case.truth), case.truth.values.astype(np.float64))
    editor = batch._editor(case, 0, 1)
    assert editor.transform_name == "none"
    with pytest.raises(NeuronEditError, match="transform must be one of"):
        type(case)(**{**case.__dict__, "transform": "logicle"})
    with pytest.raises(NeuronEditError, match="positive cofactor"):
        type(case)(**{**case.__dict__, "transform": "arcsinh"})


def test_cv_scores_average_families_then_families():
    rows = [{"candidate": "a", "family": "cytof", "ratio": 0.5},
            {"candidate": "a", "family": "cytof", "ratio": 0.7},
            {"candidate": "a", "family": "spillover", "ratio": 1.0},
            {"candidate": "b", "family": "cytof", "ratio": 0.9},
            {"candidate": "b", "family": "spillover", "ratio": 0.5}]
    assert batch.cv_scores(rows) == pytest.approx({"a": 0.8, "b": 0.7})


def test_select_method_scores_held_out_spike_ins_only():
    case = next(iter(spillover_cases(n_cells=400)))
    messages = []
    # The truth is never read: selection runs the same with the truth replaced by garbage.
    blind = type(case)(**{**case.__dict__, "truth": None})
    choice, rows = batch.select_method([blind], epochs=2, log=messages.append,
                                       candidates=(("paper", None), ("calibrated", None)))
    assert choice in {"paper", "calibrated"}
    assert {r["split"] for r in rows} <= {"random", "population"} and rows
    assert all(np.isfinite(r["ratio"]) and r["ratio"] > 0 for r in rows)
    scores = batch.cv_scores(rows)
    assert scores[choice] == min(scores.values())


def test_select_method_scores_what_build_returns():
    case = next(iter(spillover_cases(n_cells=400)))
    seen = []

    def build(editor, source, target):
        seen.append(len(source))
        graphs = batch.graphs(editor, source, target, [("paper", None)])
        return {"mine": graphs["paper"]}

    choice, rows = batch.select_method([case], epochs=1, log=lambda message: None, build=build)
    assert choice == "mine" and {r["candidate"] for r in rows} == {"mine"}
    # One editor per split, built from the fitting part only (fewer rows than all of S).
    assert len(seen) == len(rows) and all(n < len(case.source.values) for n in seen)


def test_select_method_editors_can_be_ensembles():
    case = next(iter(spillover_cases(n_cells=400)))
    editor = batch._editor(case, 0, 1, members=2)
    assert editor.members == 2
    assert editor.part("encoder").get_layer("encoder_1").output.shape[-1] == 50
    # One edit over both members' codes (2 x 50 neurons), the paper's 101 knots (the bench's
    # editors are method="paper"; every method is read off their autoencoders).
    assert editor.part("neuron_edit").source_q.shape == (101, 100)


def test_candidates_may_carry_their_own_knots():
    case = next(iter(spillover_cases(n_cells=400)))
    editor = batch._editor(case, 0, 1)
    gate = {"k": 5, "low": 1.2, "high": 1.8}
    built = batch.graphs(editor, case.source.values, case.target.values,
                         [("gated", gate), ("gated", gate, (49, 51)), ("paper", None, range(101))])
    assert list(built) == ["gated(k=5, 1.2-1.8)", "gated(k=5, 1.2-1.8) knots 49,51", "paper"]
    knots = {name: graph.get_layer("neuron_edit").source_q.shape[0]
             for name, graph in built.items()}
    assert knots == {"gated(k=5, 1.2-1.8)": 2, "gated(k=5, 1.2-1.8) knots 49,51": 2,
                     "paper": 101}
    # Same number of knots (the default 25, 75 and 49, 51), other percentiles: they differ.
    default, median = (np.asarray(built[n].get_layer("neuron_edit").source_q)
                       for n in list(built)[:2])
    assert not np.allclose(default, median)
    sample = case.sample.values[:50]
    assert not np.allclose(models.run(built["gated(k=5, 1.2-1.8)"], sample),
                           models.run(built["gated(k=5, 1.2-1.8) knots 49,51"], sample))
