"""bench.study: the quick configuration gives a Section with both tables and sane numbers."""

import numpy as np
import pytest

from neuronedit_tf.bench import study
from neuronedit_tf.data.datasets import load_cytof


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    import neuronedit_tf.bench.study as module

    original = module.cytonormpy_python
    module.cytonormpy_python = lambda build=True, log=print: None  # its own test below
    try:
        return study.run(tmp_path_factory.mktemp("study"), quick=True, log=lambda m: None)
    finally:
        module.cytonormpy_python = original


def test_the_section_has_both_tables_and_its_command(quick):
    text = quick.render()
    assert quick.name == "study" and "neuronedit bench study --quick" in text
    assert "### One study model against one model per plate" in text
    assert "### A plate added later with `add_batch`" in text
    assert "cytonormpy was not run" in text
    methods = {r["method"] for r in quick.rows}
    assert methods == {"no correction", "quantile map per plate", "study editor (default)",
                       "study editor (paper)", "pairwise NeuronEditor per plate (default)"}
    assert {(r["reference"], r["plate"]) for r in quick.rows} == {("021", "028"), ("021", "034")}


def test_no_correction_equals_an_independent_computation(quick):
    from scipy.stats import wasserstein_distance

    [row] = [r for r in quick.rows if r["method"] == "no correction" and r["plate"] == "028"]
    x = np.arcsinh(load_cytof("028", 2).values.astype(np.float64) / 5)
    y = np.arcsinh(load_cytof("021", 2).values.astype(np.float64) / 5)
    expected = np.mean([wasserstein_distance(x[:, k], y[:, k]) for k in range(x.shape[1])])
    assert row["emd"] == pytest.approx(expected, rel=1e-9)


def test_numbers_are_finite_and_sane(quick):
    for row in quick.rows:
        assert np.isfinite(row["emd"]) and row["emd"] >= 0
    mean = {m: np.mean([r["emd"] for r in quick.rows if r["method"] == m])
            for m in {r["method"] for r in quick.rows}}
    # The per-plate quantile map fitted on the anchors moves donor 2 toward the truth.
    assert mean["quantile map per plate"] < mean["no correction"]
    [added] = quick.added
    assert (added["reference"], added["added plate"]) == ("021", "034")
    assert added["others unchanged"] is True
    assert np.isfinite(added["EMD added later"]) and np.isfinite(added["EMD from the start"])
    assert added["add_batch s"] > 0 and quick.add_seconds > 0


def test_paired_differences_pair_the_same_reference_plate_and_seed():
    rows = [{"method": "study editor (default)", "reference": "a", "plate": "b", "seed": s,
             "emd": 0.1 + 0.01 * s} for s in (0, 1)]
    rows += [{"method": "pairwise", "reference": "a", "plate": "b", "seed": s, "emd": 0.12}
             for s in (0, 1)]
    rows += [{"method": "none", "reference": "a", "plate": "b", "seed": 0, "emd": 0.2}]
    result = study.paired_differences(rows)
    assert result["pairwise"][0] == pytest.approx(-0.015) and result["pairwise"][2:] == (2, 2)
    assert result["none"][0] == pytest.approx(-0.095) and result["none"][2:] == (2, 2)
