"""Bad input never crashes silently: one typed error or a correct, finite result, at every
public entry point (Python API, readers, CLI). Numerical safety of the full editor.

Every case is counted with ``record`` of ``tests/tools/reliability_report.py``
(``docs/RELIABILITY.md``) and runs under an alarm, so a hang fails instead of stalling the suite.
"""

import contextlib
import signal
import zlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neuronedit_tf import NeuronEditError, NeuronEditor
from neuronedit_tf.cli import main
from neuronedit_tf.data import iter_chunks, read, write
from neuronedit_tf.data.datasets import CYTOF_BATCHES, cytof_fcs_bytes, facs_diva_bytes
from neuronedit_tf.data.tables import as_table
from neuronedit_tf.layers import NeuronEdit
from neuronedit_tf.methods import METHODS
from tools.reliability_report import record

F32 = float(np.finfo(np.float32).max)
SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@contextlib.contextmanager
def alarm(seconds=60):
    """Fail (TimeoutError) instead of hanging."""
    def expired(*_):
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(promise, call, expect_error=None):
    """Run ``call``: a NeuronEditError, or a result that is finite. Anything else fails.

    ``expect_error`` True/False checks which of the two it must be. Returns the result
    (None after an error).
    """
    with alarm():
        try:
            result = call()
        except NeuronEditError as error:
            assert str(error), "an error without a message"
            assert expect_error is not False, f"refused a valid input: {error}"
            record(promise, "typed error")
            return None
    assert expect_error is not True, "accepted an invalid input"
    values = getattr(result, "values", result)
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        assert np.all(np.isfinite(values)), "a silent NaN/inf output"
    record(promise, "correct result")
    return result


# --------------------------------------------------------------------------- fitted editors
@pytest.fixture(scope="module")
def data(cytof):
    return {k: v.values for k, v in cytof.items()}


@pytest.fixture(scope="module", params=METHODS)
def editor(request, cytof):
    """A tiny editor of each method on the real spike-in pair (37 markers, arcsinh)."""
    return NeuronEditor(method=request.param, transform="arcsinh", hidden=(16, 8, 4),
                        seed=0).fit(cytof["source"], cytof["target"], extra=cytof["sample"],
                                    epochs=2, verbose=0)


@pytest.fixture(scope="module")
def plain_editors(data):
    """Every method without a transform: the raw values reach the network directly."""
    return {m: NeuronEditor(method=m, hidden=(16, 8, 4), quantiles=range(0, 101, 5), seed=0)
            .fit(data["source"], data["target"], extra=data["sample"], epochs=2, verbose=0)
            for m in METHODS}


def _expected_error(values, width=37):
    """Whether ``values`` must be refused by ``transform`` of a ``width``-feature editor."""
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] != width:
        return True
    if values.dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            return bool(not np.all(np.isfinite(values)) or np.any(np.abs(values) > F32))
    return False


ELEMENTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 1e-45, 1e30, -1e30, F32, -F32, 1e38, 5e-324, 1e39]),
)


@SETTINGS
@given(values=hnp.arrays(np.float64,
                         st.tuples(st.sampled_from([0, 1, 2, 7]), st.sampled_from([0, 1, 36, 37, 38])),
                         elements=ELEMENTS),
       dtype=st.sampled_from([np.float64, np.float32, np.float16]))
def test_transform_any_array_is_an_error_or_finite(editor, values, dtype):
    with np.errstate(over="ignore", invalid="ignore"):
        values = values.astype(dtype)  # a float16/float32 cast turns big values into inf
        expected = _expected_error(values)
    outcome("bad input: transform, generated arrays", lambda: editor.transform(values),
            expect_error=expected)


@settings(SETTINGS, max_examples=25)
@given(values=hnp.arrays(np.int64, st.tuples(st.integers(1, 5), st.just(37)),
                         elements=st.integers(-(2**62), 2**62)))
def test_integer_input_of_any_size_gives_a_finite_edit(editor, values):
    out = outcome("bad input: transform, integers", lambda: editor.transform(values),
                  expect_error=False)
    assert out.shape == values.shape and out.dtype == np.float32


@pytest.mark.parametrize("make", [
    lambda v: v.astype(np.complex64),
    lambda v: v.astype("datetime64[s]").astype("datetime64[s]"),
    lambda v: v.astype(str),
    lambda v: np.array([[None] * 37] * 3),
    lambda v: [[1.0] * 37, [1.0] * 36],
    lambda v: pd.DataFrame(v).astype("Float64").mask(lambda d: d > 1),
    lambda v: {"a": 1},
    lambda v: None,
    lambda v: 3.0,
    lambda v: v[:, :, None],
    lambda v: v.astype(np.float64) * 1e39,
], ids=["complex", "datetime", "strings", "None-objects", "ragged", "pandas-NA", "dict",
        "None", "scalar", "3-D", "beyond-float32"])
def test_wrong_kinds_are_one_typed_error(editor, data, make):
    values = data["sample"][:20]
    outcome("bad input: transform, wrong kinds", lambda: editor.transform(make(values)),
            expect_error=True)


def test_one_row_and_bool_inputs_are_edited(editor, data):
    outcome("bad input: transform, edge shapes", lambda: editor.transform(data["sample"][:1]),
            expect_error=False)
    outcome("bad input: transform, edge shapes",
            lambda: editor.transform(data["sample"][:5] > 10), expect_error=False)
    outcome("bad input: transform, edge shapes",
            lambda: editor.transform(data["sample"][:5].tolist()), expect_error=False)


def test_reordered_missing_and_extra_channels(editor, cytof):
    frame = cytof["sample"].to_frame()
    straight = editor.transform(frame)
    reordered = outcome("bad input: named channels", lambda: editor.transform(frame[frame.columns[::-1]]),
                        expect_error=False)
    np.testing.assert_array_equal(reordered[frame.columns].to_numpy(), straight.to_numpy())
    outcome("bad input: named channels", lambda: editor.transform(frame.iloc[:, 1:]),
            expect_error=True)
    outcome("bad input: named channels", lambda: editor.transform(frame.assign(extra=1.0)),
            expect_error=True)
    renamed = frame.rename(columns={frame.columns[0]: frame.columns[1]})
    outcome("bad input: named channels", lambda: editor.transform(renamed), expect_error=True)


# --------------------------------------------------------------------------- fit
def _fit(source, target, extra=None, **kwargs):
    settings_ = dict(hidden=(8, 4, 2), quantiles=range(0, 101, 10), seed=0)
    settings_.update(kwargs.pop("editor", {}))

    def run():
        editor = NeuronEditor(**settings_).fit(source, target, extra=extra, epochs=1,
                                               verbose=0, **kwargs)
        probe = np.asarray(getattr(source, "values", source))[:50]
        return editor.transform(probe)

    return run


FIT_CASES = {
    # name: (make(S, T, X) -> (args, kwargs), must be an error?)
    "nan in source": (lambda S, T, X: ((np.where(S == S.max(), np.nan, S), T), {}), True),
    "inf in target": (lambda S, T, X: ((S, np.where(T == T.max(), np.inf, T)), {}), True),
    "nan in extra": (lambda S, T, X: ((S, T, np.full_like(X, np.nan)), {}), True),
    "empty source": (lambda S, T, X: ((S[:0], T), {}), True),
    "one row": (lambda S, T, X: ((S[:1], T[:1]), {}), True),
    "fewer rows than quantiles": (lambda S, T, X: ((S[:10], T), {}), True),
    "exactly as many rows as quantiles": (lambda S, T, X: ((S[:11], T[:11], X), {}), False),
    "constant column": (lambda S, T, X: ((np.c_[S[:, :3], np.full(len(S), 7.0)], T[:, :4]), {}), False),
    "all constant": (lambda S, T, X: ((np.ones_like(S), np.ones_like(T)), {}), False),
    "duplicate columns": (lambda S, T, X: ((np.repeat(S[:, :1], 4, 1), np.repeat(T[:, :1], 4, 1)), {}), False),
    "one column": (lambda S, T, X: ((S[:, :1], T[:, :1]), {}), False),
    "width mismatch": (lambda S, T, X: ((S, T[:, :-1]), {}), True),
    "extra width mismatch": (lambda S, T, X: ((S, T, X[:, :-1]), {}), True),
    "strings": (lambda S, T, X: ((S.astype(str), T), {}), True),
    "complex": (lambda S, T, X: ((S.astype(complex), T), {}), True),
    "1-D": (lambda S, T, X: ((S[:, 0], T[:, 0]), {}), True),
    "huge 1e15 values": (lambda S, T, X: ((S * 1e15, T * 1e15), {}), False),
    "huge 1e30 values": (lambda S, T, X: ((S * 1e30, T * 1e30), {}), True),
    "beyond float32": (lambda S, T, X: ((S.astype(np.float64) * 1e36, T), {}), True),
    "epochs 0": (lambda S, T, X: ((S, T), {"epochs_override": 0}), True),
    "batch_size text": (lambda S, T, X: ((S, T), {"batch_size": "a"}), True),
    "validation_split 1": (lambda S, T, X: ((S, T), {"validation_split": 1.0}), True),
    "negative width": (lambda S, T, X: ((S, T), {"editor": {"hidden": (-3, 2)}}), True),
    "no widths": (lambda S, T, X: ((S, T), {"editor": {"hidden": ()}}), True),
    "nan quantile": (lambda S, T, X: ((S, T), {"editor": {"quantiles": (0, float("nan"), 100)}}), True),
    "seed text": (lambda S, T, X: ((S, T), {"editor": {"seed": "x"}}), True),
    "learning rate nan": (lambda S, T, X: ((S, T), {"editor": {"learning_rate": float("nan")}}), True),
    "zero cofactor": (lambda S, T, X: ((S, T), {"editor": {"transform": "arcsinh", "cofactor": 0}}), True),
    "unknown layer": (lambda S, T, X: ((S, T), {"editor": {"layer": "nope"}}), True),
}


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_fit_bad_input_is_one_typed_error_or_a_finite_edit(data, case):
    make, must_fail = FIT_CASES[case]
    S, T, X = (data[k][:300, :4].astype(np.float64) for k in ("source", "target", "sample"))
    args, kwargs = make(S, T, X)
    if "epochs_override" in kwargs:
        epochs = kwargs.pop("epochs_override")

        def call():
            return NeuronEditor(hidden=(8, 4, 2)).fit(*args, epochs=epochs, verbose=0)
    else:
        call = _fit(*args, **kwargs)
    outcome("bad input: fit cases", call, expect_error=must_fail)


def test_named_fit_inputs_reordered_missing_extra(cytof):
    source, target = cytof["source"].to_frame().iloc[:200, :5], cytof["target"].to_frame().iloc[:200, :5]
    outcome("bad input: named channels", _fit(source, target[target.columns[::-1]]),
            expect_error=False)
    outcome("bad input: named channels", _fit(source, target.iloc[:, 1:]), expect_error=True)
    outcome("bad input: named channels", _fit(source, target.assign(x=1.0)), expect_error=True)
    outcome("bad input: named channels",
            _fit(source, target, editor={"channels": ["nope"]}), expect_error=True)


def test_layer_adapt_bad_activations():
    rng = np.random.default_rng(0)
    good = rng.normal(size=(50, 3)).astype("float32")
    for bad in (good[:0], good[:1], np.where(good > 1, np.nan, good), good[:, :2], good.ravel()):
        outcome("bad input: NeuronEdit.adapt",
                lambda: NeuronEdit(quantiles=(0, 50, 100)).adapt(good, bad), expect_error=True)


def test_tl_edit_bad_input(cytof):
    anndata = pytest.importorskip("anndata")
    from neuronedit_tf import tl

    frame = pd.concat([cytof[k].to_frame().iloc[:150, :5] for k in ("source", "target", "sample")])
    adata = anndata.AnnData(frame.to_numpy(), obs=pd.DataFrame(
        {"condition": ["ctrl"] * 150 + ["stim"] * 150 + ["x"] * 150},
        index=[str(i) for i in range(450)]))
    adata.var_names = list(frame.columns)
    fit = {"epochs": 1, "verbose": 0}
    outcome("bad input: tl.edit", lambda: tl.edit(adata, key="nope", fit_kwargs=fit),
            expect_error=True)
    outcome("bad input: tl.edit", lambda: tl.edit(adata, source="ctrl", target="ctrl",
                                                  fit_kwargs=fit), expect_error=True)
    broken = adata.copy()
    broken.X[3, 2] = np.nan
    outcome("bad input: tl.edit", lambda: tl.edit(broken, fit_kwargs=fit), expect_error=True)


# --------------------------------------------------------------------------- numerical safety
FINITE32 = st.floats(-F32, F32, allow_nan=False, allow_infinity=False, width=32)


@settings(SETTINGS, max_examples=25)
@given(values=hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.just(37)),
                         elements=st.one_of(FINITE32, st.sampled_from(
                             [0.0, 1e-45, -1e-45, 1e30, -1e30, F32, -F32, 1e4, -1e4]))))
def test_edit_is_finite_for_any_finite_float32_input(plain_editors, editor, values):
    for method, model in (*plain_editors.items(), ("arcsinh", editor)):
        out = outcome("numerical safety: finite float32 inputs", lambda: model.transform(values),
                      expect_error=False)
        assert out.shape == values.shape


def test_far_values_saturate_instead_of_overflowing(editor, plain_editors):
    """Regression: arcsinh's inverse (sinh) overflowed to inf past ~89 on the arcsinh scale
    (a 3e34 input), and standardising a value near float32's limit overflowed the network."""
    far = np.stack([np.full(37, 2.9674633e34), np.full(37, F32), np.full(37, -F32),
                    np.where(np.arange(37) % 2, F32, -F32)]).astype(np.float32)
    for model in (editor, *plain_editors.values()):
        out = outcome("numerical safety: finite float32 inputs", lambda: model.transform(far),
                      expect_error=False)
        assert np.all(np.abs(out) <= F32)


@pytest.mark.parametrize("method", METHODS)
def test_edit_does_not_depend_on_batch_size_or_row_order(plain_editors, data, method):
    model = plain_editors[method]
    rng = np.random.default_rng(1)
    rows = np.concatenate([data["sample"], data["truth"] * 3.0])  # far values too
    whole = model.transform(rows)
    scale = np.abs(whole).max()
    for trial in range(3):
        cuts = np.sort(rng.choice(np.arange(1, len(rows)), size=6 + trial * 20, replace=False))
        pieces = np.concatenate([model.transform(p) for p in np.split(rows, cuts)])
        np.testing.assert_allclose(pieces, whole, rtol=1e-5, atol=1e-5 * scale)
        order = rng.permutation(len(rows))
        np.testing.assert_allclose(model.transform(rows[order]), whole[order], rtol=1e-5,
                                   atol=1e-5 * scale)
        record("numerical safety: batch size and row order", "correct result", 2)


# --------------------------------------------------------------------------- files
@pytest.fixture(scope="module")
def real_fcs():
    files = {f"cytof_{b}_{d}": cytof_fcs_bytes(b, d) for b in CYTOF_BATCHES for d in (1, 2)}
    files["facs_diva"] = facs_diva_bytes()
    return files


def _read_checked(path, format=None):
    """Read a file both ways (whole and in chunks); each gives a checked table or an error."""
    def whole():
        content = read(path, format)
        return as_table(content, str(path))

    def chunks():
        return [c.values for c in iter_chunks(path, chunk_size=257, format=format)]

    return whole, chunks


def _offsets(size, rng, n):
    fixed = [0, 1, 2, 6, 8, 10, 58, 100, 256, 1024, size // 2, size - 1]
    spread = rng.integers(1, max(size, 2), size=n)
    return sorted({int(o) for o in fixed + list(spread) if 0 <= o < size})


def test_truncated_real_fcs_files_are_refused(real_fcs, tmp_path):
    import io

    import flowio

    rng = np.random.default_rng(0)
    for name, content in real_fcs.items():
        data_end = flowio.FlowData(io.BytesIO(content)).header["data_stop"]
        # Cut anywhere up to the end of the DATA segment: refused. Past it only the
        # trailing CRC field is lost, and the events are complete: it may read.
        for offset in _offsets(len(content), rng, 25) + [data_end, data_end + 1]:
            path = tmp_path / f"{name}_{offset}.fcs"
            path.write_bytes(content[:offset])
            whole, _ = _read_checked(path)
            outcome("bad files: truncated real FCS", whole,
                    expect_error=True if offset <= data_end else None)
            path.unlink()


def test_byte_flipped_real_fcs_files_read_or_refuse(real_fcs, tmp_path):
    rng = np.random.default_rng(1)
    for name, content in real_fcs.items():
        text_end = 4096
        for trial in range(30):
            damaged = bytearray(content)
            region = text_end if trial % 2 == 0 else len(content)  # header/TEXT, or anywhere
            for position in rng.integers(0, region, size=1 + trial % 4):
                damaged[int(position)] ^= int(rng.integers(1, 256))
            path = tmp_path / f"{name}_{trial}.fcs"
            path.write_bytes(bytes(damaged))
            whole, _ = _read_checked(path)
            outcome("bad files: byte-flipped real FCS", whole)
            path.unlink()


FORMATS = ["csv", "tsv", "parquet", "npy", "npz", "h5", "h5ad", "fcs"]


@pytest.fixture(scope="module")
def good_files(cytof, tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    frame = cytof["sample"].to_frame().iloc[:300]
    frame.index = [f"c{i}" for i in range(len(frame))]
    return {f: write(folder / f"good.{f}", frame).read_bytes() for f in FORMATS}


@pytest.mark.parametrize("suffix", FORMATS)
def test_truncated_and_flipped_files_of_every_format(good_files, tmp_path, suffix):
    # zlib.crc32, not hash(): str hashes are salted per process, so the damage (and the
    # test) would differ on every run.
    rng = np.random.default_rng(zlib.crc32(suffix.encode()))
    content = good_files[suffix]
    for offset in _offsets(len(content), rng, 20):
        path = tmp_path / f"t{offset}.{suffix}"
        path.write_bytes(content[:offset])
        whole, chunks = _read_checked(path)
        outcome(f"bad files: truncated/flipped {suffix}", whole)
        outcome(f"bad files: truncated/flipped {suffix}", chunks)
    for trial in range(20):
        damaged = bytearray(content)
        for position in rng.integers(0, len(content), size=1 + trial % 3):
            damaged[int(position)] ^= int(rng.integers(1, 256))
        path = tmp_path / f"f{trial}.{suffix}"
        path.write_bytes(bytes(damaged))
        whole, chunks = _read_checked(path)
        outcome(f"bad files: truncated/flipped {suffix}", whole)
        outcome(f"bad files: truncated/flipped {suffix}", chunks)


@pytest.mark.parametrize("suffix", FORMATS)
def test_zero_byte_and_mislabelled_files(good_files, tmp_path, suffix):
    empty = tmp_path / f"empty.{suffix}"
    empty.write_bytes(b"")
    outcome("bad files: zero-byte / wrong extension", _read_checked(empty)[0], expect_error=True)
    for other in FORMATS:
        if other == suffix or {other, suffix} <= {"csv", "tsv"}:
            continue
        wrong = tmp_path / f"{other}_as.{suffix}"
        wrong.write_bytes(good_files[other])
        same_container = {other, suffix} == {"h5", "h5ad"}
        whole, chunks = _read_checked(wrong)
        # A text file named as text of the other kind, or HDF5 vs h5ad, may read; else refused.
        outcome("bad files: zero-byte / wrong extension", whole,
                expect_error=None if same_container or suffix in ("csv", "tsv") else True)
        outcome("bad files: zero-byte / wrong extension", chunks,
                expect_error=None if same_container or suffix in ("csv", "tsv") else True)
    unknown = tmp_path / "cells.xlsx"
    unknown.write_bytes(good_files[suffix])
    outcome("bad files: zero-byte / wrong extension", _read_checked(unknown)[0], expect_error=True)


def test_text_tables_with_bad_cells(tmp_path):
    cases = {
        "nan.csv": "a,b\n1,2\nnan,3\n",
        "text.csv": "a,b\n1,2\nx,3\n",
        "ragged.csv": "a,b\n1,2,3\n4\n",
        "header_only.csv": "a,b\n",
        "duplicate.csv": "a,a\n1,2\n",
        "huge.csv": "a,b\n1e39,2\n",
        "binary.csv": "a,b\n\x00\x01\xff,2\n",
        "no_header.csv": "\n\n",
        "inf.tsv": "a\tb\n1\tinf\n",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_bytes(text.encode("latin-1"))
        whole, chunks = _read_checked(path)
        outcome("bad files: text tables", whole, expect_error=True)
        outcome("bad files: text tables", chunks, expect_error=True)


# --------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, good_files):
    folder = tmp_path_factory.mktemp("cli")
    files = {"good": folder / "good.fcs"}
    files["good"].write_bytes(good_files["fcs"])
    files["empty"] = folder / "empty.fcs"
    files["empty"].write_bytes(b"")
    files["truncated"] = folder / "truncated.fcs"
    files["truncated"].write_bytes(good_files["fcs"][:3000])
    files["csv_as_fcs"] = folder / "table.fcs"
    files["csv_as_fcs"].write_bytes(good_files["csv"])
    files["missing"] = folder / "missing.fcs"
    files["wrong_ext"] = folder / "cells.xyz"
    files["wrong_ext"].write_bytes(good_files["fcs"])
    files["nan"] = folder / "nan.csv"
    files["nan"].write_text("a,b\n1,nan\n")
    model = folder / "model"
    assert main(["fit", "--source", str(files["good"]), "--target", str(files["good"]),
                 "--hidden", "8,4,2", "--epochs", "1", "--model", str(model)]) == 0
    files["model"] = model
    files["not_a_model"] = folder / "not_a_model"
    files["not_a_model"].mkdir()
    (files["not_a_model"] / "neuronedit.json").write_text("{broken")
    (files["not_a_model"] / "model.keras").write_bytes(b"PK\x03\x04 not really")
    return files


@pytest.mark.parametrize("bad", ["empty", "truncated", "csv_as_fcs", "missing", "wrong_ext", "nan"])
def test_cli_bad_files_exit_1_with_a_message_and_write_nothing(cli_files, bad, tmp_path, capsys):
    out = tmp_path / "out"
    with alarm():
        code = main(["apply", "--model", str(cli_files["model"]), str(cli_files[bad]),
                     "--out-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "error:" in err and "Traceback" not in err
    assert not out.exists() or list(out.iterdir()) == []
    with alarm():
        code = main(["fit", "--source", str(cli_files[bad]), "--target", str(cli_files["good"]),
                     "--hidden", "4,2,1", "--epochs", "1", "--model", str(tmp_path / "m")])
    assert code == 1 and not (tmp_path / "m").exists()
    record("bad input: CLI", "typed error", 2)


@pytest.mark.parametrize("args", [
    ["apply", "--model", "{not_a_model}", "{good}", "--out-dir", "{out}"],
    ["apply", "--model", "{missing_dir}", "{good}", "--out-dir", "{out}"],
    ["apply", "--model", "{model}", "{good}", "--out-dir", "{good}"],
    ["apply", "--model", "{model}", "{good}", "--out-dir", "{out}", "--out-format", "xls"],
    ["export", "--model", "{not_a_model}", "--out", "{out}"],
    ["fit", "--source", "{good}", "--target", "{good}", "--model", "{out}", "--epochs", "0"],
    ["fit", "--source", "{good}", "--target", "{good}", "--model", "{out}", "--channels", "nope"],
    ["fit", "--source", "{good}", "--target", "{good}", "--model", "{out}", "--cofactor", "-1",
     "--transform", "arcsinh"],
], ids=["broken-model", "missing-model", "out-dir-is-a-file", "bad-out-format", "export-broken",
        "epochs-0", "unknown-channel", "negative-cofactor"])
def test_cli_bad_models_and_options_exit_1(cli_files, args, tmp_path, capsys):
    names = {k: str(v) for k, v in cli_files.items()}
    names.update(out=str(tmp_path / "out"), missing_dir=str(tmp_path / "nothing"))
    with alarm():
        code = main([a.format(**names) for a in args])
    err = capsys.readouterr().err
    assert code == 1 and "error:" in err, err
    record("bad input: CLI", "typed error")


def test_fuzz_harness_runs_and_finds_nothing_in_a_short_random_run(tmp_path):
    """The fuzzing command itself (its random engine, a few seconds; the atheris run is separate)."""
    import json

    from tools import fuzz

    with alarm(120):
        code = fuzz.main(["fcs", "--seconds", "3", "--engine", "random", "--artifacts",
                          str(tmp_path / "artifacts"), "--json", str(tmp_path / "summary.json")])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0 and summary["findings"] == [] and summary["executions"] > 0
    record("bad files: random FCS mutations", "typed error", summary["refused"])
    record("bad files: random FCS mutations", "correct result", summary["read"])


# --------------------------------------------------------------------------- HDF5 crashes
def _flipped(content, seed):
    """``content`` with 1 + seed % 3 bytes XOR-ed at seeded positions (the damage of the
    probe that measured HDF5's crashes and hangs on damaged files)."""
    rng = np.random.default_rng(seed)
    damaged = bytearray(content)
    for position in rng.integers(0, len(content), size=1 + seed % 3):
        damaged[int(position)] ^= int(rng.integers(1, 256))
    return bytes(damaged)


#: Seeds whose damage to ``good_files["h5ad"]`` killed anndata/h5py with SIGSEGV in a probe
#: of 2,000 seeds (before read() checked HDF5 files in a child process): 1 crash, 1 hang.
H5AD_CRASH_SEEDS = [1704]
#: Seeds whose damage makes HDF5 loop forever on the file (1 in 2,000 h5ad, 1 in 1,000 h5).
HANG_SEEDS = {"h5ad": 1816, "h5": 922}

_READ_IN_A_CHILD = """
import sys
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.data import iter_chunks, read
path = sys.argv[1]
for call in (lambda: read(path), lambda: list(iter_chunks(path, chunk_size=257))):
    try:
        call()
        print("read", flush=True)
    except NeuronEditError as error:
        print("NeuronEditError:", error, flush=True)
import anndata  # the same file, unguarded: it must still crash, or this test tests nothing
adata = anndata.read_h5ad(path)
print("unguarded read survived", flush=True)
"""


@pytest.mark.parametrize("seed", H5AD_CRASH_SEEDS)
def test_an_h5ad_that_crashes_hdf5_is_one_clear_error(good_files, tmp_path, seed):
    import subprocess
    import sys

    path = tmp_path / f"crash{seed}.h5ad"
    path.write_bytes(_flipped(good_files["h5ad"], seed))
    child = subprocess.run([sys.executable, "-c", _READ_IN_A_CHILD, str(path)],
                           capture_output=True, text=True, timeout=120)
    lines = child.stdout.splitlines()
    # Both guarded reads return (data or an error), whatever HDF5 does with the file.
    assert len(lines) >= 2, f"the guarded reads crashed the process: {child.stdout!r}"
    if "unguarded read survived" in child.stdout:
        # Memory errors are undefined behaviour: another build or CPU may survive this
        # file. The guard must then not have called it a crash either.
        assert not any("crashes the HDF5 library" in line for line in lines[:2]), lines
        return
    assert child.returncode < 0  # the unguarded read crashed: the file is a real crasher
    for line in lines[:2]:
        assert line.startswith("NeuronEditError:") and "is damaged" in line, line
        assert str(path) in line and "h5ls" in line
    record("bad files: truncated/flipped h5ad", "typed error", 2)


@pytest.mark.parametrize("suffix", sorted(HANG_SEEDS))
def test_a_file_that_hangs_hdf5_is_one_clear_error(good_files, tmp_path, suffix):
    from neuronedit_tf.data.hdf5check import check_hdf5

    path = tmp_path / f"hang.{suffix}"
    path.write_bytes(_flipped(good_files[suffix], HANG_SEEDS[suffix]))
    with alarm(60):
        with pytest.raises(NeuronEditError, match="is damaged: .* stop making progress"):
            check_hdf5(path, stall_seconds=2)
    record(f"bad files: truncated/flipped {suffix}", "typed error")


@pytest.mark.parametrize("suffix", ["h5ad", "h5"])
def test_a_sound_hdf5_file_reads_the_same_values_through_the_check(good_files, cytof, tmp_path,
                                                                   suffix):
    path = tmp_path / f"good.{suffix}"
    path.write_bytes(good_files[suffix])
    expected = cytof["sample"].to_frame().iloc[:300].to_numpy(np.float32)
    for _ in range(2):  # the second read is served by the first check
        np.testing.assert_array_equal(as_table(read(path), str(path)).values, expected)
    np.testing.assert_array_equal(
        np.concatenate([c.values for c in iter_chunks(path, chunk_size=257)]), expected)
    record(f"bad files: truncated/flipped {suffix}", "correct result")


def test_a_file_rewritten_after_its_check_is_checked_again(good_files, tmp_path, monkeypatch):
    from neuronedit_tf.data.hdf5check import check_hdf5

    path = tmp_path / "good.h5ad"
    path.write_bytes(good_files["h5ad"])
    check_hdf5(path)
    # The child imports h5py from this process's sys.path: here one that dies at once by
    # SIGSEGV, as HDF5 does on a damaged file. The same path rewritten in place (same size)
    # must be checked again, and the crash refused.
    fake = tmp_path / "crashing_h5py"
    fake.mkdir()
    (fake / "h5py.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.syspath_prepend(str(fake))
    path.write_bytes(_flipped(good_files["h5ad"], 0))
    with pytest.raises(NeuronEditError, match=r"good.h5ad is damaged: .*\(SIGSEGV"):
        check_hdf5(path)
    record("bad files: truncated/flipped h5ad", "typed error")
