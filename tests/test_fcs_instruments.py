"""FCS files from the instruments labs own: the 17 of the fcsparser 0.2.8 wheel (10 makers).

15 read equal to fcsparser (shape, $PnN, the exact float32 values) and round-trip through
``write``; each oddity worked around is an FCSWarning naming it. The 2 that fcsparser refuses
too are refused with one clear NeuronEditError.
"""

import functools
import hashlib
import subprocess
import warnings

import numpy as np
import pytest

from neuronedit_tf import NeuronEditError
from neuronedit_tf.data import FCSWarning, read, write
from neuronedit_tf.data.datasets import FCSPARSER, read_member

from conftest import fcsparser_parse

FOLDER = "fcsparser/tests/data/FlowCytometers/"
#: Each readable file and the warning it must give (None: a standard file, no warning).
READABLE = {
    "Cytek_xP5/Cytek_xP5.fcs": r"stores 24-bit integers",
    "FACSCaliburHTS/Sample_Well_A02.fcs": None,
    "FACS_Diva/facs_diva_test.fcs": None,
    "Fortessa/FCS_3.0_Fortessa_PBS_Specimen_001_A1_A01.fcs": None,
    "GuavaMuse/Guava Muse.fcs": r"holds 4 data sets .*read the first\. Pass dataset=0\.\.3",
    "HTS_BD_LSR-II/HTS_BD_LSR_II_Mixed_Specimen_001_D6_D06.fcs": None,
    "MiltenyiBiotec/FCS2.0/EY_2013-07-19_PBS_FCS_2.0_Custom_Without_Add_Well_A1.001.fcs": None,
    "MiltenyiBiotec/FCS3.0/FCS3.0_Custom_Compatible.fcs": None,
    # MACSQuant FCS 3.1: $ENDDATA one byte past the last event.
    "MiltenyiBiotec/FCS3.1/EY_2013-07-19_PBS_FCS_3.1_Custom_Add_Well_A1.001.fcs":
        r"\(760001 bytes\) but \$TOT=10000 events need 760000",
    "MiltenyiBiotec/FCS3.1/EY_2013-07-19_PBS_FCS_3.1_Custom_Without_Add_Well_A1.001.fcs":
        r"\(760001 bytes\) but \$TOT=10000 events need 760000",
    "MiltenyiBiotec/FCS3.1/EY_2013-07-19_PBS_FCS_3.1_Well_A1.001.fcs":
        r"\(760001 bytes\) but \$TOT=10000 events need 760000",
    "MiltenyiBiotec/FCS3.1/SG_2014-09-26_Duplicate_Names.fcs":
        r"\(292645 bytes\) but \$TOT=8129 events need 292644",
    "cyflow_cube_8/cyflow_cube_8.fcs": None,
    # Beckman Coulter list mode: every value has bits set above $PnR=1024.
    "fake_bitmask_error/fcs1_cleaned.lmd":
        r"values above \$PnR in channels \[1, 2, 3, 4, 5, 6, 7\]",
    "fake_large_fcs/fake_large_fcs.fcs": r"HEADER's DATA offsets are blank",
}
#: The two files fcsparser refuses too, and what our error says.
BROKEN = {
    "corrupted/corrupted.fcs": r"not a FCS file \(its first bytes are not a FCS signature\)",
    "cytek-nl-2000/sample_header.fcs":
        r"not a readable FCS file .*data section greater than file size",
}


@pytest.fixture(scope="module")
def instrument_files(tmp_path_factory):
    """The 17 files, under their own names, from the pinned and cached fcsparser wheel."""
    folder = tmp_path_factory.mktemp("instruments")
    paths = {}
    for member in [*READABLE, *BROKEN]:
        path = folder / member
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(read_member(FCSPARSER, FOLDER + member))
        paths[member] = path
    return paths


@functools.lru_cache(maxsize=None)
def _fcsparser(path, data_set=0):
    return fcsparser_parse(path, data_set)


def _read_expecting(path, expected, **options):
    """Read ``path``; an FCSWarning matching ``expected`` must be given (none if None)."""
    if expected is None:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FCSWarning)
            return read(path, **options)
    with pytest.warns(FCSWarning, match=expected):
        return read(path, **options)


def _assert_like_fcsparser(data, reference):
    assert list(data.values.shape) == reference["shape"]
    assert data.channels == reference["channels"]["$PnN"]
    # Both give float32 of the same stored numbers, so the bytes are equal, not just close.
    digest = hashlib.sha256(np.ascontiguousarray(data.values, np.float32).tobytes()).hexdigest()
    assert digest == reference["sha"]


@pytest.mark.parametrize("member", list(READABLE))
def test_instrument_file_reads_like_fcsparser_and_warns_about_its_oddity(instrument_files,
                                                                         member):
    path = instrument_files[member]
    data = _read_expecting(path, READABLE[member])
    _assert_like_fcsparser(data, _fcsparser(str(path)))


@pytest.mark.parametrize("member", list(READABLE))
def test_instrument_file_round_trips_through_write(instrument_files, tmp_path, member):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FCSWarning)
        original = read(instrument_files[member])
    written = write(tmp_path / "out.fcs", original)
    back = _read_expecting(written, None)  # what we write is standard FCS 3.1
    np.testing.assert_array_equal(back.values, original.values)
    assert back.channels == original.channels and back.markers == original.markers


@pytest.mark.parametrize("member", list(BROKEN))
def test_broken_instrument_file_is_refused_like_fcsparser_refuses_it(instrument_files, member):
    path = instrument_files[member]
    with pytest.raises(subprocess.CalledProcessError):
        _fcsparser(str(path))
    with pytest.raises(NeuronEditError, match=BROKEN[member]):
        read(path)


@pytest.mark.parametrize("dataset", [0, 1, 2, 3])
def test_a_chosen_data_set_of_a_multi_data_set_file_reads_like_fcsparser(instrument_files,
                                                                         dataset):
    path = instrument_files["GuavaMuse/Guava Muse.fcs"]
    data = _read_expecting(path, None, dataset=dataset)  # chosen, so nothing to warn about
    _assert_like_fcsparser(data, _fcsparser(str(path), dataset))


@pytest.mark.parametrize("dataset", [4, -1, "1"])
def test_a_data_set_the_file_does_not_hold_is_refused(instrument_files, dataset):
    with pytest.raises(NeuronEditError, match=r"holds 4 .*pass dataset=0\.\.3"):
        read(instrument_files["GuavaMuse/Guava Muse.fcs"], dataset=dataset)
