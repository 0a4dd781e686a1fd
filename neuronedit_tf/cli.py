"""The ``neuronedit`` command.

Exit codes: 0 success, 1 a data or model error (the message says what and how
to fix), 2 a usage error, 130 interrupted (Ctrl-C; no partial file is left).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXAMPLES = {
    "demo": "neuronedit demo --out neuronedit_demo",
    "fit": "neuronedit fit --source ctrl_A.fcs --target ctrl_B.fcs --extra sample_A.fcs "
           "--channels @markers.txt --transform arcsinh --cofactor 5 --model edit_model/",
    "apply": "neuronedit apply --model edit_model/ sample_A.fcs other_A.fcs --out-dir edited/",
    "export": "neuronedit export --model edit_model/ --out served --name neuronedit --format both",
}
FORMAT_HELP = ("file format, overriding the extension: fcs, csv, tsv, parquet, npy, npz, hdf5, "
               "h5ad (HDF5/NPZ arrays are named as FILE.h5:/path)")


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
    fit.add_argument("--source", required=True, help="S: the data before the change")
    fit.add_argument("--target", required=True, help="T: the same kind of data after it")
    fit.add_argument("--extra", nargs="+", action="extend", default=[],
                     help="X: data to edit later (one or more files; seen in training)")
    fit.add_argument("--model", required=True, help="folder to save the fitted editor in")
    fit.add_argument("--channels", help="channels/columns to edit (FCS: $PnN), comma-separated "
                                        "or @FILE with one per line (default all); the others "
                                        "pass through unchanged")
    fit.add_argument("--format", help=FORMAT_HELP)
    fit.add_argument("--transform", choices=("none", "arcsinh", "logicle"), default="none",
                     help="applied before editing and inverted after (outputs keep their units)")
    fit.add_argument("--cofactor", type=float, default=5.0,
                     help="arcsinh cofactor (5 CyTOF, 150 flow)")
    fit.add_argument("--logicle", help="logicle parameters, e.g. t=262144,w=0.5,m=4.5,a=0")
    fit.add_argument("--hidden", default="500,250,50", help="encoder widths (paper: 500,250,50)")
    fit.add_argument("--epochs", type=int, default=200)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--overwrite", action="store_true")
    fit.add_argument("--method", default="neuron_edit",
                     help="neuron_edit (default) or a comparison method of "
                          "neuronedit_tf.baselines (e.g. quantile_map, combat, cyclegan); "
                          "the baselines take --transform/--cofactor/--seed")

    apply = command("apply", "Edit files with a fitted editor.")
    apply.add_argument("--model", required=True, help="a folder written by `neuronedit fit`")
    apply.add_argument("files", nargs="+", help="files to edit (any supported format)")
    apply.add_argument("--out-dir", required=True, help="folder for the edited files")
    apply.add_argument("--format", help=FORMAT_HELP)
    apply.add_argument("--out-format", help="format of the edited files (default: the input's)")

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


def _names(text):
    """``"a,b"`` -> ``["a", "b"]``; ``"@names.txt"`` -> the file's non-empty lines."""
    from pathlib import Path

    from neuronedit_tf.errors import NeuronEditError

    if not text:
        return None
    if text.startswith("@"):
        try:
            lines = Path(text[1:]).read_text().splitlines()
        except OSError as error:
            raise NeuronEditError(f"Cannot read the channel list {text[1:]}: {error}.") from None
        return [line.strip() for line in lines if line.strip()]
    return [c.strip() for c in text.split(",") if c.strip()]


def _logicle(text):
    from neuronedit_tf.errors import NeuronEditError

    if not text:
        return None
    options = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        try:
            options[key.strip().lower()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise NeuronEditError(
                f"--logicle takes key=value pairs like t=262144,w=0.5,m=4.5,a=0; got {text!r}."
            )
    return options


def _hidden(text):
    from neuronedit_tf.errors import NeuronEditError

    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise NeuronEditError(f"--hidden takes positive widths like 500,250,50; got {text!r}.")
    return widths


def _fit(args):
    from neuronedit_tf.data.formats import read
    from neuronedit_tf.editor import NeuronEditor

    if args.method != "neuron_edit":
        _fit_baseline(args)
        return
    editor = NeuronEditor(
        transform=args.transform, cofactor=args.cofactor, logicle=_logicle(args.logicle),
        channels=_names(args.channels), hidden=_hidden(args.hidden), seed=args.seed,
    )
    source, target = read(args.source, args.format), read(args.target, args.format)
    extra = [read(path, args.format) for path in args.extra] or None
    editor.fit(source, target, extra=extra, epochs=args.epochs)
    path = editor.save(args.model, overwrite=args.overwrite)
    print(f"saved the fitted editor to {path}")


def _fit_baseline(args):
    """``neuronedit fit --method NAME``: a comparison method, saved for ``apply``."""
    from neuronedit_tf import baselines
    from neuronedit_tf.data.formats import read
    from neuronedit_tf.errors import NeuronEditError

    if args.method not in baselines.names():
        raise NeuronEditError(
            f"Unknown --method {args.method!r}; choose one of {', '.join(baselines.names())}."
        )
    if args.channels or args.logicle:
        raise NeuronEditError(
            "--channels and --logicle work with --method neuron_edit only; select the channels "
            "in the files first."
        )
    method = baselines.get(args.method, transform=args.transform, cofactor=args.cofactor,
                           seed=args.seed)
    source, target = read(args.source, args.format), read(args.target, args.format)
    extra = [read(path, args.format) for path in args.extra]
    if len(extra) > 1:
        raise NeuronEditError("A comparison method takes one --extra file.")
    method.fit(source, target, extra=extra[0] if extra else None)
    path = method.save(args.model, overwrite=args.overwrite)
    print(f"saved the fitted {args.method} to {path}")


def _load_model(path):
    """A saved NeuronEditor, or a saved comparison method (``fit --method``)."""
    from pathlib import Path

    from neuronedit_tf.baselines.base import CONFIG_FILE as BASELINE_CONFIG
    from neuronedit_tf.editor import NeuronEditor

    if (Path(path) / BASELINE_CONFIG).exists():
        from neuronedit_tf import baselines

        return baselines.load(path)
    return NeuronEditor.load(path)


def _destinations(files, out_dir, out_format):
    """Where each input's edited copy goes; refuses collisions and writing over an input."""
    from pathlib import Path

    from neuronedit_tf.data.formats import FORMATS, split_dataset
    from neuronedit_tf.errors import NeuronEditError

    suffix = {"hdf5": ".h5", "tsv": ".tsv"}.get(out_format, f".{out_format}") if out_format else None
    if out_format is not None and out_format not in FORMATS:
        raise NeuronEditError(f"Unknown --out-format {out_format!r}; choose one of {FORMATS}.")
    inputs = [split_dataset(f)[0] for f in files]
    destinations = [Path(out_dir) / (p.with_suffix(suffix).name if suffix else p.name)
                    for p in inputs]
    names = [d.name for d in destinations]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise NeuronEditError(
            f"Several inputs would be written to the same file(s) {repeated} in {out_dir}; "
            "rename them or edit them in separate runs."
        )
    for source, destination in zip(inputs, destinations):
        if destination.resolve() == source.resolve():
            raise NeuronEditError(
                f"{destination} would overwrite its input; choose another --out-dir "
                "(inputs are never modified)."
            )
    return destinations


def _apply(args):
    from tqdm import tqdm

    from neuronedit_tf import __version__
    from neuronedit_tf.data.formats import infer_format, read, resolve_dataset, split_dataset, write

    editor = _load_model(args.model)
    destinations = _destinations(args.files, args.out_dir, args.out_format)
    edited_what = ",".join(editor.columns) if editor.columns else "all features"
    note = (f"neuronedit {__version__}: edited {edited_what} with the model {args.model} "
            f"(transform {editor.transform_name})")
    progress = tqdm(list(zip(args.files, destinations)), desc="editing files", unit="file",
                    disable=len(args.files) < 2)
    for path, destination in progress:
        source_path, dataset = split_dataset(path)
        in_format = infer_format(source_path, args.format)
        if in_format == "hdf5":
            dataset = resolve_dataset(source_path, dataset)
        edited = editor.transform(read(path, args.format, mmap=False))
        out_format = args.out_format or in_format
        write(destination, edited, out_format, note=note,
              dataset=dataset if out_format == "hdf5" else None)
        progress.write(f"wrote {destination}")


def _demo(args):
    from neuronedit_tf.demo import run_demo, summary

    print(summary(run_demo(args.out, epochs=args.epochs, seed=args.seed)))


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
        print(f"neuronedit {args.command}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # disk full, permission denied, ...: the environment, not a bug
        print(f"neuronedit {args.command}: error: {error.strerror or error} "
              f"({error.filename or 'a file'}); nothing partial was left behind.",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Every write goes to a temporary file renamed on success, so nothing partial is left.
        print(f"neuronedit {args.command}: interrupted; no partial file was written.",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
