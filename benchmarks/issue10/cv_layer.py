"""Issue #10: which layer to edit, chosen by spike-in CV (the issue's "editing more than one
layer"; the edited layer itself was never cross-validated: every method so far edits the
bottleneck, the paper's choice).

Candidates: the library's "gated" method (quartile edit, its calibration, its gate on the
edited layer's codes; `methods.build_edit_graph`, exactly what `NeuronEditor(layer=L)` builds)
at each inner layer L of the dense autoencoder (37-500-250-50-250-500-37): encoder_act_0,
encoder_act_1, bottleneck, decoder_act_0, decoder_act_1; gate bands 1.2-1.8 (the default's) and
1.5-2.5. One autoencoder per split serves every layer (the same trained weights, split at L).
Protocol and rule: cv_knots.py's (its cv_rows and summarize), fixed before the run
(select_method's splits and score on seeds 0, 1, 2; families cytof (spike-in-donor-1 cases),
spillover, drugs; the lowest mean three-family score wins). Never reads a truth.

Run: PYTHONPATH=. python benchmarks/issue10/cv_layer.py [seeds]   (rows -> cv_layer.json)
     PYTHONPATH=. python benchmarks/issue10/cv_layer.py truth [seeds]   (reporting only, after
     the choice: every candidate against the 14 cases' truth, the bench's editor per case)
"""
import sys
from pathlib import Path

import keras
import numpy as np

from neuronedit_tf import models
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases, spillover_cases

from cv_knots import cv_rows, summarize

LAYERS = ("encoder_act_0", "encoder_act_1", "bottleneck", "decoder_act_0", "decoder_act_1")
BANDS = ({"k": 5, "low": 1.2, "high": 1.8}, {"k": 5, "low": 1.5, "high": 2.5})
OUT = Path(__file__).with_name("cv_layer.json")


def split_chain(editor, layer):
    """(encoder, decoder) of the editor's trained autoencoder split at ``layer``: its
    encoder's layers then its decoder's as one chain, the same weights (models.split_at's
    result for a fresh chain; split_at itself refuses layers already used in another graph)."""
    encoder, decoder = editor.part("encoder"), editor.part("decoder")
    chain = encoder.layers[1:] + decoder.layers[1:]
    cut = [layer_.name for layer_ in chain].index(layer) + 1
    pieces = []
    for name, part in (("encoder", chain[:cut]), ("decoder", chain[cut:])):
        shape = (encoder.input.shape if name == "encoder" else part[0].input.shape)[1:]
        x = inputs = keras.Input(tuple(shape))
        for layer_ in part:
            x = layer_(x)
        pieces.append(keras.Model(inputs, x, name=name))
    return pieces


def layer_graphs(editor, source, target, layers=LAYERS, bands=BANDS):
    """``{"gated(...) at L": raw -> raw graph}``: the bench's own gated candidates
    (:func:`batch.graphs`) with the autoencoder split at L."""
    return {f"{name} at {layer}": graph for layer in layers
            for name, graph in batch.graphs(editor, source, target,
                                            [("gated", band) for band in bands],
                                            halves=split_chain(editor, layer)).items()}


def main(seeds):
    summarize(cv_rows(OUT, seeds, build=layer_graphs))


def truth(seeds):
    rows = []
    for seed in seeds:
        for case in list(cytof_cases()) + list(spillover_cases()):
            editor = batch._editor(case, seed, 200)
            for name, graph in layer_graphs(editor, case.source.values,
                                            case.target.values).items():
                row = batch.score(case, models.run(graph, case.sample.values))
                rows.append(dict(row, case=case.name, family=case.name.split("_")[0],
                                 candidate=name, seed=seed))
            print(f"seed {seed}: {case.name} done", flush=True)
    print("| candidate | CyTOF EMD ↓ | CyTOF r ↑ | cross-channel RMSE ↓ | cross-channel EMD ↓ |")
    print("|---|---|---|---|---|")
    for name in dict.fromkeys(r["candidate"] for r in rows):
        cy = [r for r in rows if r["candidate"] == name and r["family"] == "cytof"]
        sp = [r for r in rows if r["candidate"] == name and r["family"] == "spillover"]
        print(f"| {name} | {np.mean([r['emd'] for r in cy]):.4f} | "
              f"{np.mean([r['r'] for r in cy]):.3f} | {np.mean([r['rmse'] for r in sp]):.3f} | "
              f"{np.mean([r['emd'] for r in sp]):.3f} |")


if __name__ == "__main__" and sys.argv[1:2] == ["truth"]:
    truth([int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "0").split(",")])
elif __name__ == "__main__":
    main([int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "0,1,2").split(",")])
