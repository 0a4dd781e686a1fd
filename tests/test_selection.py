"""``method="auto"`` (neuronedit_tf.selection) and the data-space methods it weighs."""

import json

import numpy as np
import pytest

from neuronedit_tf import NeuronEditor, baselines, selection
from neuronedit_tf.errors import NeuronEditError

SMALL = dict(hidden=(32, 16, 8), epochs=3, verbose=0)


def _pair(seed=0, n=600):
    """Two populations; T is a per-feature monotone distortion of S's kind of cells."""
    rng = np.random.default_rng(seed)
    def cells(n):
        a = rng.normal(size=(n // 2, 4)) + [2, 0, 0, 0]
        b = rng.normal(size=(n - n // 2, 4)) + [-2, 0, 1, 0]
        return np.concatenate([a, b]).astype(np.float32)
    source, target, extra = cells(n), cells(n), cells(n)
    return source, 1.5 * target + [1.0, 0.0, -0.5, 0.0], extra


def test_quantile_map_method_is_the_comparison_quantile_map_without_an_autoencoder(tmp_path):
    source, target, extra = _pair()
    editor = NeuronEditor(method="quantile_map", **SMALL).fit(source, target, extra=extra)
    assert editor.history_ == {}  # nothing trained
    assert [layer.name for layer in editor.model_.layers][1:] == [
        "preprocessing", "feature_map", "postprocessing"]
    expected = baselines.get("quantile_map").fit(source, target).transform(extra)
    # Same map on differently standardised values (the maps commute with the affine
    # standardisation, not the float32 rounding): equal to float32 precision of the values.
    np.testing.assert_allclose(editor.transform(extra), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(NeuronEditError, match="no part 'encoder'"):
        editor.part("encoder")
    editor.save(tmp_path / "saved")
    loaded = NeuronEditor.load(tmp_path / "saved")
    assert loaded.method_ == "quantile_map"
    np.testing.assert_array_equal(loaded.transform(extra), editor.transform(extra))


def test_mean_shift_method_adds_the_mean_difference_on_the_transformed_scale():
    source, target, extra = _pair()
    editor = NeuronEditor(method="mean_shift", transform="arcsinh", cofactor=1.0,
                          **SMALL).fit(np.sinh(source), np.sinh(target), extra=np.sinh(extra))
    shift = target.mean(0) - source.mean(0)
    np.testing.assert_allclose(np.arcsinh(editor.transform(np.sinh(extra))), extra + shift,
                               rtol=1e-4, atol=1e-4)


def test_data_space_methods_export_and_serve_in_a_fresh_process(tmp_path):
    source, target, extra = _pair()
    editor = NeuronEditor(method="quantile_map", **SMALL).fit(source, target, extra=extra)
    report = editor.export(tmp_path / "served", format="both")
    assert set(report["parity"]) == {"saved_model", "saved_model_cli", "model.tflite"}
    metadata = json.loads((tmp_path / "served" / "assets" / "neuronedit.json").read_text())
    assert list(metadata["signatures"]) == ["serving_default"]


def test_cross_validate_picks_the_candidate_that_transfers_to_held_out_cells():
    source, target, _ = _pair()
    calls = []

    def fit_split(s, t):  # no training: two fixed candidates, one right, one a no-op
        calls.append((len(s), len(t)))
        shift = t.mean(0) - s.mean(0)
        return {"right": lambda x: 1.5 * x + [1.0, 0.0, -0.5, 0.0],
                "no_op": lambda x: x, "mean": lambda x: x + shift}

    choice, rows = selection.cross_validate(fit_split, source, target, lambda v: v,
                                            candidates=("no_op", "mean", "right"))
    assert choice == "right"
    assert {r["split"] for r in rows} == {"random", "population"}  # both splits found
    assert len(calls) == 2 and all(n < len(source) for pair in calls for n in pair)
    scores = selection.scores(rows)
    assert scores["right"] < scores["mean"] < scores["no_op"] == pytest.approx(1.0)


def test_auto_keeps_its_choice_and_builds_exactly_the_chosen_method(tmp_path):
    source, target, extra = _pair()
    auto = NeuronEditor(method="auto", **SMALL).fit(source, target, extra=extra)
    table = auto.selection_
    assert auto.method_ == table["choice"] == min(selection.scores(table["rows"]).items(),
                                                  key=lambda kv: kv[1])[0]
    assert {r["candidate"] for r in table["rows"]} == set(selection.CANDIDATES)
    assert "gated_shift" not in {r["candidate"] for r in table["rows"]}
    # Given X, the sample split is one of auto's splits; the choice is by the geometric mean.
    assert [s for s in dict.fromkeys(r["split"] for r in table["rows"])] == [
        "random", "population", "sample"]
    assert table["rule"] == selection.RULE == "geometric_mean"
    named = NeuronEditor(method=auto.method_, **SMALL).fit(source, target, extra=extra)
    # The same seeded computation after the cross-validation's own fits: bit for bit.
    np.testing.assert_array_equal(auto.transform(extra), named.transform(extra))
    auto.save(tmp_path / "auto")
    loaded = NeuronEditor.load(tmp_path / "auto")
    assert loaded.selection_ == json.loads(json.dumps(table))
    assert auto.method_ in selection.table(loaded.selection_)
    assert selection.table(loaded.selection_).splitlines()[0] == (
        "| candidate | random | population | sample | geometric mean |")


def test_auto_on_too_few_spike_ins_takes_the_fallback_and_says_why():
    source, target, extra = _pair(n=150)
    editor = NeuronEditor(method="auto", quantiles=None, **SMALL).fit(source, target, extra=extra)
    assert editor.method_ == selection.FALLBACK
    assert "fewer than" in editor.selection_["reason"]


def test_auto_refuses_fixed_knots():
    with pytest.raises(NeuronEditError, match="quantiles= sets one method's knots"):
        NeuronEditor(method="auto", quantiles=[10, 50, 90])


def test_the_cross_validation_samples_large_data_and_streams(monkeypatch):
    source, target, extra = _pair(n=900)
    monkeypatch.setattr(selection, "CV_ROWS", 400)
    seen = []
    original = NeuronEditor.candidates

    def spy(self, s, t, names=selection.CANDIDATES):
        seen.append((len(s), len(t)))
        return original(self, s, t, names)

    monkeypatch.setattr(NeuronEditor, "candidates", spy)
    import tensorflow as tf

    stream = tf.data.Dataset.from_tensor_slices(extra).batch(128)
    editor = NeuronEditor(method="auto", **SMALL).fit(source, target, extra=stream)
    assert editor.selection_["rows"] and editor.method_ in selection.CANDIDATES
    # Each split fits on a part of the 400-row samples of S and T, never more.
    assert seen and all(max(pair) <= 400 for pair in seen)


def test_the_table_shows_each_splits_score_per_candidate():
    source, target, _ = _pair()

    def fit_split(s, t):
        shift = t.mean(0) - s.mean(0)
        return {"no_op": lambda x: x, "mean": lambda x: x + shift}

    choice, rows = selection.cross_validate(fit_split, source, target, lambda v: v,
                                            candidates=("no_op", "mean"))
    # A selection without a "rule" (as 0003's auto saved it) shows the arithmetic mean.
    lines = selection.table({"choice": choice, "rows": rows}).splitlines()
    assert lines[0] == "| candidate | random | population | mean |"
    for name in ("no_op", "mean"):
        ratios = {r["split"]: r["ratio"] for r in rows if r["candidate"] == name}
        line = next(line for line in lines if line.startswith(f"| {name} ")
                    or line.startswith(f"| **{name}** "))
        cells = [cell.strip("* ") for cell in line.split("|")[2:-1]]
        assert cells == [f"{ratios['random']:.3f}", f"{ratios['population']:.3f}",
                         f"{np.mean(list(ratios.values())):.3f}"]


def test_the_optional_sample_split_holds_out_the_source_cells_most_like_the_sample():
    source, target, _ = _pair()
    # X holds only population a (feature 0 around +2): the S cells near it are held out.
    rng = np.random.default_rng(1)
    sample = (rng.normal(size=(400, 4)) + [2, 0, 0, 0]).astype(np.float32)
    split = selection.sample_split(source, target, sample, seed=0)
    assert split is not None
    (s_fit, t_fit), (s_held, t_held) = split
    assert not (s_fit & s_held).any() and (s_fit | s_held).all()  # disjoint, covering S
    assert not (t_fit & t_held).any() and (t_fit | t_held).all()
    assert s_held.sum() == round(selection.SAMPLE_HOLD * len(source))
    in_a = source[:, 0] > 0  # _pair's population a
    assert in_a[s_held].mean() > 0.95  # the held-out third is X's kind of cells
    # T's cells follow their S cells after the percentile map (T's feature 0 is 1.5 x + 1).
    assert (target[t_held, 0] > 1.0).mean() > 0.9
    # Seeded: the same seed gives the same masks; the seed only orders tied scores.
    again = selection.sample_split(source, target, sample, seed=0)
    for a, b in zip(np.concatenate(split), np.concatenate(again)):
        np.testing.assert_array_equal(a, b)
    other = selection.sample_split(source, target, sample, seed=1)[1][0]
    assert 0 < (other != s_held).sum() < 0.2 * len(source)
    # Skipped without X or with too few X cells.
    assert selection.sample_split(source, target, None) is None
    assert selection.sample_split(source, target, sample[:100]) is None


def test_the_sample_split_is_a_default_split_used_when_there_is_a_sample():
    source, target, extra = _pair()

    def fit_split(s, t):
        shift = t.mean(0) - s.mean(0)
        return {"no_op": lambda x: x, "mean": lambda x: x + shift}

    def split_names(**kwargs):
        _, rows = selection.cross_validate(fit_split, source, target, lambda v: v,
                                           candidates=("no_op", "mean"), **kwargs)
        return list(dict.fromkeys(r["split"] for r in rows))

    assert selection.SPLITS == selection.ALL_SPLITS == ("random", "population", "sample")
    assert split_names(sample=extra) == ["random", "population", "sample"]
    assert split_names() == ["random", "population"]  # no X: no sample split
    assert split_names(sample=extra, split_names=("random", "population")) == [
        "random", "population"]
    assert split_names(sample=extra, split_names=("sample",)) == ["sample"]
    with pytest.raises(NeuronEditError, match="unknown cross-validation split"):
        split_names(split_names=("halves",))


def test_the_rule_is_the_geometric_mean_over_splits():
    # "a" is far better on the random halves, a little worse on the held-out population: the
    # arithmetic mean (0003) is led by the population split's larger ratios and picks "b"; the
    # geometric mean weighs every split by relative differences and picks "a".
    rows = [{"split": "random", "candidate": "a", "ratio": 0.2},
            {"split": "population", "candidate": "a", "ratio": 1.0},
            {"split": "sample", "candidate": "a", "ratio": 0.5},
            {"split": "random", "candidate": "b", "ratio": 0.5},
            {"split": "population", "candidate": "b", "ratio": 0.6},
            {"split": "sample", "candidate": "b", "ratio": 0.5}]
    assert selection.RULE == "geometric_mean"
    found = selection.scores(rows)
    assert found["a"] == pytest.approx((0.2 * 1.0 * 0.5) ** (1 / 3))  # the cube root, 0.464
    assert found["b"] == pytest.approx((0.5 * 0.6 * 0.5) ** (1 / 3))  # 0.531
    assert selection.choose(rows, ("a", "b")) == "a"
    assert selection.scores(rows, rule="mean")["b"] < selection.scores(rows, rule="mean")["a"]
    assert selection.choose(rows, ("a", "b"), rule="mean") == "b"
    # Over the splits that exist: a candidate scored on fewer splits is scored on those.
    assert selection.scores(rows[:2])["a"] == pytest.approx(np.sqrt(0.2))
    # A tie goes to the first listed.
    tied = rows[:3] + [dict(r, candidate="c") for r in rows[:3]]
    assert selection.choose(tied, ("c", "a")) == "c" and selection.choose(tied, ("a", "c")) == "a"
    with pytest.raises(NeuronEditError, match="Unknown selection rule 'median'"):
        selection.scores(rows, rule="median")


def test_gated_shift_is_named_not_chosen():
    assert "gated_shift" not in selection.CANDIDATES
    assert selection.CANDIDATES == ("gated", "latent_shift", "calibrated", "paper",
                                    "quantile_map", "mean_shift")
    assert selection.FALLBACK in selection.CANDIDATES
    # Still a method by name, and built for comparisons unless told otherwise.
    assert selection.METHODS == selection.CANDIDATES[:1] + ("gated_shift",) + \
        selection.CANDIDATES[1:]
    source, target, extra = _pair()
    editor = NeuronEditor(method="gated_shift", **SMALL).fit(source, target, extra=extra)
    assert editor.method_ == "gated_shift"
    assert list(editor.candidates(source, target)) == list(selection.METHODS)


def test_an_editor_saved_before_the_rule_loads_and_shows_its_own_rule(tmp_path):
    # A folder saved by 0003's auto: its selection has no "rule" and was chosen by the
    # arithmetic mean, with gated_shift a candidate. It loads, and its table shows that mean
    # and its own choice (gated), not a re-scoring by today's rule.
    source, target, extra = _pair()
    editor = NeuronEditor(method="gated", **SMALL).fit(source, target, extra=extra)
    rows = [{"split": "random", "candidate": "gated_shift", "ratio": 0.2},
            {"split": "population", "candidate": "gated_shift", "ratio": 1.0},
            {"split": "random", "candidate": "gated", "ratio": 0.5},
            {"split": "population", "candidate": "gated", "ratio": 0.6}]
    for row in rows:
        row.update(emd=row["ratio"], before=1.0)
    editor.selection_ = {"choice": "gated", "rows": rows, "candidates": ["gated", "gated_shift"]}
    editor.save(tmp_path / "old")
    loaded = NeuronEditor.load(tmp_path / "old")
    assert loaded.method_ == "gated" and "rule" not in loaded.selection_
    lines = selection.table(loaded.selection_).splitlines()
    assert lines[0] == "| candidate | random | population | mean |"
    assert "| **gated** | 0.500 | 0.600 | **0.550** |" in lines
    assert "| gated_shift | 0.200 | 1.000 | 0.600 |" in lines
