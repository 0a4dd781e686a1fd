"""Export of a conv editor: images in, edited images out, in both formats."""

import numpy as np

from neuronedit_tf import NeuronEditor
from neuronedit_tf.export import QUANTIZED_FILE, QUANTIZED_TOLERANCE, TFLITE_FILE, TOLERANCE
from neuronedit_tf.models import conv_autoencoder
from neuronedit_tf.serving import ServedEditor


def test_conv_editor_exports_images_in_both_formats(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, size=(240, 8, 8, 1)).astype(np.float32)
    # The paper's conv architecture (stride-2 4x4 convolutions), narrower to keep the test fast.
    autoencoder = conv_autoencoder((8, 8, 1), filters=(8, 16), seed=0)
    editor = NeuronEditor(model=autoencoder, quantiles=range(0, 101, 10)).fit(
        images[:80], images[80:160] * 0.5 + 0.3, extra=images[160:], epochs=1, verbose=0
    )
    report = editor.export(tmp_path / "conv", format="both", quantize=True)
    for key in ("saved_model", "saved_model_cli", TFLITE_FILE):
        assert report["parity"][key]["max_error"] <= TOLERANCE, (key, report["parity"][key])
    assert report["parity"][QUANTIZED_FILE]["max_error"] <= QUANTIZED_TOLERANCE
    served = ServedEditor(tmp_path / "conv", batch_size=7)
    np.testing.assert_allclose(served.transform(images[:20, ..., 0]), editor.transform(images[:20]),
                               rtol=1e-4, atol=1e-5)
