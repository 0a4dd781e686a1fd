"""The ``neuronedit`` command.

Exit codes: 0 success, 1 a data or model error (the message says what and how
to fix), 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXAMPLES = {
    "demo": "neuronedit demo --out neuronedit_demo",
    "fit": "neuronedit fit --source ctrl_A.fcs --target ctrl_B.fcs --extra sample_A.fcs "
           "--transform arcsinh --cofactor 5 --model edit_model/",
    "apply": "neuronedit apply --model edit_model/ sample_A.fcs other_A.fcs --out-dir edited/",
    "export": "neuronedit export --model edit_model/ --out served --name neuronedit --format both",
}


def _parser():
    parser = argparse.ArgumentParser(
        prog="neuronedit",
        description="Neuron editing: transform data the way a source set became a target set.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES.values()),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help_text):
        return commands.add_parser(
            name, help=help_text, description=help_text,
            epilog=f"example:\n  {EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    demo = command("demo", "Spike-in batch correction on real CyTOF data (the default job).")
    demo.add_argument("--out", default="neuronedit_demo", help="output folder")
    demo.add_argument("--epochs", type=int, default=200, help="maximum training epochs")
    demo.add_argument("--seed", type=int, default=0)

    fit = command("fit", "Train an editor from source/target (and extra) files; save it.")
    fit.add_argument("--source", required=True, help="S: CSV/TSV/FCS before the change")
    fit.add_argument("--target", required=True, help="T: the same kind of data after it")
    fit.add_argument("--extra", action="append", default=[], help="X: data to edit later")
    fit.add_argument("--model", required=True, help="folder to save the fitted editor in")
    fit.add_argument("--channels", help="comma-separated columns/channels to edit (default all)")
    fit.add_argument("--transform", choices=("none", "arcsinh"), default="none")
    fit.add_argument("--cofactor", type=float, default=5.0, help="arcsinh cofactor (5 CyTOF)")
    fit.add_argument("--epochs", type=int, default=200)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--overwrite", action="store_true")

    apply = command("apply", "Edit files with a fitted editor.")
    apply.add_argument("--model", required=True, help="a folder written by `neuronedit fit`")
    apply.add_argument("files", nargs="+", help="CSV/TSV/FCS files to edit")
    apply.add_argument("--out-dir", required=True, help="folder for the edited files")

    export = command("export", "Export a fitted editor as one graph (SavedModel and/or TFLite).")
    export.add_argument("--model", required=True, help="a folder written by `neuronedit fit`")
    export.add_argument("--out", required=True,
                        help="the export folder (with --name/--version: its parent, TF Serving layout)")
    export.add_argument("--format", choices=("saved_model", "tflite", "both"), default="saved_model")
    export.add_argument("--name", help="TF Serving model name: writes OUT/NAME/VERSION")
    export.add_argument("--version", type=int, help="TF Serving version (default: next free)")
    export.add_argument("--quantize", action="store_true",
                        help="also write a dynamic-range quantised TFLite file")
    export.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the fresh-process parity check")
    export.add_argument("--overwrite", action="store_true")
    return parser


def _read(path, channels):
    """A file as the editor's input: FCSData for FCS (channels selected), else a DataFrame."""
    from neuronedit_tf.data.fcs import read_fcs
    from neuronedit_tf.data.tables import read_table
    from neuronedit_tf.errors import NeuronEditError

    if str(path).lower().endswith(".fcs"):
        data = read_fcs(path)
        return data.select(channels) if channels else data
    table = read_table(path)
    import pandas as pd

    frame = pd.DataFrame(table.values, columns=table.columns)
    if channels:
        missing = [c for c in channels if c not in frame.columns]
        if missing:
            raise NeuronEditError(f"{path} has no columns {missing}; it has {list(frame.columns)}.")
        frame = frame[channels]
    return frame


def _write(path, data, note):
    from neuronedit_tf.data.atomic import atomic_path
    from neuronedit_tf.data.fcs import FCSData, write_fcs

    if isinstance(data, FCSData):
        write_fcs(path, data, note=note)
        return
    with atomic_path(path) as temporary:
        data.to_csv(temporary, index=False, sep="\t" if str(path).endswith(".tsv") else ",")


def _demo(args):
    from neuronedit_tf.demo import run_demo, summary

    print(summary(run_demo(args.out, epochs=args.epochs, seed=args.seed)))


def _fit(args):
    from neuronedit_tf.editor import NeuronEditor

    channels = args.channels.split(",") if args.channels else None
    source, target = _read(args.source, channels), _read(args.target, channels)
    extras = [_read(path, channels) for path in args.extra]
    extra = None
    if extras:
        import pandas as pd

        from neuronedit_tf.data.tables import align, as_table

        columns = as_table(source).columns
        tables = [align(as_table(e, p), columns, p) for e, p in zip(extras, args.extra)]
        import numpy as np

        extra = pd.DataFrame(np.concatenate([t.values for t in tables]), columns=columns)
    editor = NeuronEditor(transform=args.transform, cofactor=args.cofactor, seed=args.seed)
    editor.fit(source, target, extra=extra, epochs=args.epochs)
    path = editor.save(args.model, overwrite=args.overwrite)
    print(f"saved the fitted editor to {path}")


def _apply(args):
    from pathlib import Path

    from neuronedit_tf.editor import NeuronEditor

    editor = NeuronEditor.load(args.model)
    out_dir = Path(args.out_dir)
    for path in args.files:
        edited = editor.transform(_read(path, None))
        destination = out_dir / Path(path).name
        _write(destination, edited, note=f"neuronedit: edited with {args.model}")
        print(f"wrote {destination}")


def _export(args):
    from neuronedit_tf.editor import NeuronEditor

    report = NeuronEditor.load(args.model).export(
        args.out, format=args.format, name=args.name, version=args.version,
        overwrite=args.overwrite, verify=args.verify, quantize=args.quantize,
    )
    print(f"exported to {report['path']}: {', '.join(report['files'])}")
    for artifact, figures in (report["parity"] or {}).items():
        print(f"  {artifact}: max abs difference to the Keras model {figures['max_abs']:.3g}")


HANDLERS = {"demo": _demo, "fit": _fit, "apply": _apply, "export": _export}


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from neuronedit_tf.errors import NeuronEditError

    try:
        HANDLERS[args.command](args)
    except NeuronEditError as error:
        print(f"neuronedit {args.command}: error: " + textwrap.fill(str(error), 100),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
