"""The ``neuronedit`` command.

Exit codes: 0 success, 1 a data or model error (the message says what and how
to fix), 2 a usage error, 130 interrupted (Ctrl-C; no partial file is left).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

EXAMPLES = {
    "demo": "neuronedit demo --out neuronedit_demo",
    "fit": "neuronedit fit --source ctrl_A.fcs --target ctrl_B.fcs --extra sample_A.fcs "
           "--channels @markers.txt --transform arcsinh --cofactor 5 --model edit_model/\n"
           "  neuronedit fit --metadata metadata.csv --reference-batch 1 --channels @markers.txt "
           "--transform arcsinh --cofactor 5 --model study/",
    "apply": "neuronedit apply --model edit_model/ sample_A.fcs other_A.fcs --out-dir edited/\n"
             "  neuronedit apply --model study/ --metadata metadata.csv --out-dir normalized/",
    "add-batch": "neuronedit add-batch --model study/ --batch 4 --anchor plate4_control.fcs",
    "export": "neuronedit export --model edit_model/ --out served --name neuronedit --format both",
    "bench": "neuronedit bench all --out benchmarks",
    "zoo": "neuronedit zoo list | neuronedit zoo info cytof_spikein | neuronedit zoo pull NAME",
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
    parser.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow's own log lines (oneDNN, CUDA, CPU features)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help_text):
        return commands.add_parser(
            name, help=help_text, description=help_text,
            epilog=f"example{'s' if chr(10) in EXAMPLES[name] else ''}:\n  {EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    demo = command("demo", "Spike-in batch correction on real CyTOF data (the default job).")
    demo.add_argument("--out", default="neuronedit_demo", help="output folder")
    demo.add_argument("--epochs", type=int, default=200, help="maximum training epochs")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--preset", nargs="?", const="cytof_spikein", default=None,
                      help="use a zoo preset instead of training (default cytof_spikein)")

    fit = command("fit", "Train an editor from source/target (and extra) files, or a study of "
                         "many batches from a metadata table; save it.")
    fit.add_argument("--source", help="S: the data before the change")
    fit.add_argument("--target", help="T: the same kind of data after it")
    fit.add_argument("--extra", nargs="+", action="extend", default=[],
                     help="X: data to edit later (one or more files; seen in training)")
    fit.add_argument("--metadata", help="a study instead of a pair: cytonormpy's metadata table "
                     "(CSV: file_name,reference,batch; reference 'ref' marks each batch's anchor "
                     "file, 'other' a sample; paths relative to the table's folder)")
    fit.add_argument("--reference-batch", help="with --metadata: the batch every batch is "
                     "corrected into, or 'mean' (the anchors' mean)")
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
                     help="neuron_edit (default: neuron editing's default method), auto "
                          "(chosen by cross-validation on the spike-ins), "
                          "one of its methods by name (paper: the paper's setting, "
                          "calibrated, gated), or a comparison method of "
                          "neuronedit_tf.baselines (e.g. quantile_map, combat, cyclegan); "
                          "the baselines take --transform/--cofactor/--seed")
    fit.add_argument("--members", type=int, default=1,
                     help="autoencoders trained side by side and edited together (default 1; "
                          "3 won the spike-in cross-validation, at 2x the fit time)")
    fit.add_argument("--fast", action="store_true",
                     help="also compile training with XLA (dense models); seeded results differ "
                          "slightly from the default's (benchmarks/SPEED.md compares both)")

    apply = command("apply", "Edit files with a fitted editor, or correct a study's files "
                             "into its reference batch.")
    apply.add_argument("--model", required=True, help="a folder written by `neuronedit fit`")
    apply.add_argument("files", nargs="*", help="files to edit (any supported format)")
    apply.add_argument("--metadata", help="a study's metadata table: correct every file it lists "
                       "as its own batch (written under --out-dir with its file_name)")
    apply.add_argument("--batch", help="with a study and files: the batch the files belong to")
    apply.add_argument("--out-dir", required=True, help="folder for the edited files")
    apply.add_argument("--format", help=FORMAT_HELP)
    apply.add_argument("--out-format", help="format of the edited files (default: the input's)")

    add = command("add-batch", "Add a batch to a fitted study from its anchor file(s): the "
                               "autoencoder frozen, new tables only (seconds); every other "
                               "batch's output stays the same.")
    add.add_argument("--model", required=True, help="a study folder written by `neuronedit fit "
                     "--metadata`; updated in place unless --out is given")
    add.add_argument("--batch", required=True, help="the new batch's name")
    add.add_argument("--anchor", nargs="+", action="extend", required=True,
                     help="the batch's anchor file (several are pooled)")
    add.add_argument("--format", help=FORMAT_HELP)
    add.add_argument("--out", help="write the extended study to this new folder instead")
    add.add_argument("--overwrite", action="store_true",
                     help="replace the anchor of a batch the study already has")

    export = command("export", "Export a fitted editor or study as one graph (SavedModel "
                               "and/or TFLite).")
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
    export.add_argument("--sample", help="verify on these raw rows (a data file, e.g. your own "
                        "cells; default: rows drawn around the training data)")

    bench = command("bench", "Regenerate the benchmarks: the paper's tables on real data "
                             "(benchmarks/RESULTS.md) and speed (benchmarks/SPEED.md).")
    bench.add_argument("experiment", choices=BENCH_EXPERIMENTS + ("all",),
                       help="batch (Table 2), drugs (Table 3), images (Table 1), study (many "
                            "plates, one model), speed, or all")
    bench.add_argument("--out", default="benchmarks", help="output folder (default benchmarks)")
    bench.add_argument("--seeds", default=None,
                       help="comma-separated seeds of the trained methods (default per "
                            "experiment: batch, drugs and study 0,1,2; images 0)")
    bench.add_argument("--quick", action="store_true",
                       help="a tiny configuration that proves the harness works (seconds)")
    bench.add_argument("--sections", default=None,
                       help="speed only: run these sections alone (comma-separated: "
                            "whole_fit, end_to_end, study) and rewrite them in place in "
                            "SPEED.md")
    zoo = command("zoo", "Presets: list, describe, download or retrain fitted editors.")
    actions = zoo.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the registry's presets")
    info = actions.add_parser("info", help="a preset's registry entry and metadata (JSON)")
    info.add_argument("name", help="a preset name or folder")
    pull = actions.add_parser("pull", help="download a preset (sha256 checked) into the cache")
    pull.add_argument("name")
    pull.add_argument("--force-download", action="store_true")
    for action in (listing, info, pull):
        action.add_argument("--index", help="a registry index.json (path, folder or URL; "
                            "default: the presets shipped in the package)")
    pull.add_argument("--cache-dir", help="cache folder (default $NEURONEDIT_HOME/zoo)")
    train = actions.add_parser("train", help="retrain a preset from its recipe")
    train.add_argument("name")
    train.add_argument("--out", required=True, help="the preset folder to write")
    train.add_argument("--epochs", type=int, help="maximum epochs (default: the recipe's)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--overwrite", action="store_true")
    return parser


def _check_usage(parser, args):
    """Usage errors argparse cannot express (exit 2, before anything heavy is imported)."""
    command = next((a for a in parser._actions if isinstance(a.choices, dict)), None)
    sub = command.choices.get(args.command) if command else None
    if args.command == "fit":
        if args.metadata:
            given = [f"--{n}" for n in ("source", "target") if getattr(args, n)]
            if given or args.extra:
                sub.error(f"--metadata fits a study; drop {', '.join(given) or '--extra'} "
                          "(every file is listed in the table).")
            if not args.reference_batch:
                sub.error("--metadata needs --reference-batch (a batch of the table, or mean).")
        else:
            missing = [f"--{n}" for n in ("source", "target") if not getattr(args, n)]
            if missing:
                sub.error(f"the following arguments are required: {', '.join(missing)} "
                          "(or --metadata for a study)")
            if args.reference_batch:
                sub.error("--reference-batch goes with --metadata.")
    elif args.command == "apply":
        if args.metadata and args.files:
            sub.error("give files or --metadata, not both.")
        if args.metadata and args.batch:
            sub.error("--metadata gives each file its batch; drop --batch.")
        if not args.metadata and not args.files:
            sub.error("the following arguments are required: files (or --metadata)")


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


def _editor(args):
    from neuronedit_tf.editor import NeuronEditor

    return NeuronEditor(
        transform=args.transform, cofactor=args.cofactor, logicle=_logicle(args.logicle),
        channels=_names(args.channels), hidden=_hidden(args.hidden), seed=args.seed,
        method=None if args.method == "neuron_edit" else args.method,  # None: the default
        members=args.members,
    )


def _fit(args):
    from neuronedit_tf.data.formats import read

    from neuronedit_tf import baselines, methods, selection

    if args.metadata:
        _fit_study(args)
        return
    # A comparison method's name (quantile_map, mean_shift, ...) fits that comparison method,
    # saved as such, even where neuron editing has a method of the same name for "auto".
    if args.method not in ("neuron_edit", selection.AUTO) and (
            args.method not in methods.names() or args.method in baselines.names()):
        _fit_baseline(args)
        return
    editor = _editor(args)
    source, target = read(args.source, args.format), read(args.target, args.format)
    extra = [read(path, args.format) for path in args.extra] or None
    fast = dict(jit_compile="auto") if args.fast else {}
    editor.fit(source, target, extra=extra, epochs=args.epochs, **fast)
    path = editor.save(args.model, overwrite=args.overwrite)
    if editor.selection_:
        print(f"method='auto' chose {editor.method_!r} by cross-validation on the spike-ins "
              "(held-out EMD / no correction, lower is better):")
        print(selection.table(editor.selection_))
    print(f"saved the fitted editor ({editor.method_}) to {path}")


def _fit_study(args):
    """``neuronedit fit --metadata``: one study model for every batch of the table."""
    from neuronedit_tf import methods
    from neuronedit_tf.data.metadata import read_metadata
    from neuronedit_tf.errors import NeuronEditError

    if args.method != "neuron_edit" and args.method not in methods.names():
        raise NeuronEditError(
            f"A study is fitted with neuron editing's methods ({', '.join(methods.names())}, "
            f"or the default neuron_edit); {args.method!r} is not one of them. Fit a "
            "comparison method per pair with --source/--target.")
    table = read_metadata(args.metadata)
    if args.reference_batch not in (*table.batches, "mean"):
        raise NeuronEditError(
            f"--reference-batch {args.reference_batch!r} is not a batch of {args.metadata}; its "
            f"batches are {list(table.batches)}. Give one of them, or mean (the anchors' mean).")
    table.check_channels(args.format)
    if args.model and not args.overwrite:
        from pathlib import Path

        if Path(args.model).exists():  # refuse before the training, not after it
            raise NeuronEditError(f"{args.model} exists; pass --overwrite or choose another "
                                  "--model folder.")
    fast = dict(jit_compile="auto") if args.fast else {}
    study = _editor(args).fit_study(table.anchors(args.format), reference=args.reference_batch,
                                    samples=table.samples(args.format) or None,
                                    epochs=args.epochs, **fast)
    path = study.save(args.model, overwrite=args.overwrite)
    print(f"saved the study of {len(study.batches)} batches {list(study.batches)} (reference "
          f"{study.reference}) to {path}")


def _fit_baseline(args):
    """``neuronedit fit --method NAME``: a comparison method, saved for ``apply``."""
    from neuronedit_tf import baselines, methods
    from neuronedit_tf.data.formats import read
    from neuronedit_tf.errors import NeuronEditError

    if args.method not in baselines.names():
        raise NeuronEditError(
            f"Unknown --method {args.method!r}; choose one of neuron editing's methods "
            f"({', '.join(methods.names())}) or a comparison method: "
            f"{', '.join(baselines.names())}."
        )
    if args.channels or args.logicle:
        raise NeuronEditError(
            "--channels and --logicle work with --method neuron_edit only; select the channels "
            "in the files first."
        )
    if args.members != 1 or args.fast:
        raise NeuronEditError(
            f"--members and --fast train neuron editing's autoencoders; {args.method!r} is a "
            f"comparison method (use --method neuron_edit or one of {', '.join(methods.names())})."
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


def _destinations(files, out_dir, out_format, names=None):
    from neuronedit_tf.data.formats import output_paths

    return output_paths(files, out_dir, out_format, names)


def _apply(args):
    from tqdm import tqdm

    from neuronedit_tf import __version__
    from neuronedit_tf.data.formats import infer_format, read, resolve_dataset, split_dataset, write
    from neuronedit_tf.errors import NeuronEditError
    from neuronedit_tf.study import Study

    editor = _load_model(args.model)
    if isinstance(editor, Study):
        _apply_study(args, editor)
        return
    if args.metadata or args.batch:
        raise NeuronEditError(
            f"{args.model} is an editor of one pair, not a study: it has no batches. Drop "
            f"{'--metadata' if args.metadata else '--batch'}, or fit a study with "
            "`neuronedit fit --metadata`.")
    destinations = _destinations(args.files, args.out_dir, args.out_format)
    edited_what = ",".join(editor.columns_) if editor.columns_ else "all features"
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


def _study_jobs(args, study):
    """``[(path, batch, name under --out-dir), ...]`` of an ``apply`` with a study, every file
    checked before anything is written: its batch known, its channels those of the study."""
    from pathlib import Path

    from neuronedit_tf.data.formats import channel_names
    from neuronedit_tf.data.metadata import read_metadata
    from neuronedit_tf.errors import NeuronEditError

    if args.metadata:
        table = read_metadata(args.metadata)
        jobs = [(str(f.path), f.batch, f.output_name) for f in table.files]
    elif args.batch is None:
        raise NeuronEditError(
            f"{args.model} is a study of batches {list(study.batches)}: say which batch the "
            "files belong to with --batch NAME, or give --metadata (each file its own batch).")
    else:
        jobs = [(path, args.batch, None) for path in args.files]
    unknown = list(dict.fromkeys(b for _, b, _ in jobs if b not in study.batches))
    if unknown:
        raise NeuronEditError(
            f"batch(es) {unknown} are not in the study {args.model}; it knows "
            f"{list(study.batches)}. Add each first: neuronedit add-batch --model {args.model} "
            f"--batch {unknown[0]} --anchor ANCHOR_FILE.")
    expected = list(study.columns_ or []) + list(study.passthrough_ or [])
    problems = []
    for path, _, _ in jobs:
        names = channel_names(path, args.format)
        if names is None or not expected:
            continue
        missing = [c for c in expected if c not in names]
        extra = [c for c in names if c not in expected]
        if missing or extra:
            problems.append(f"{Path(path).name}: missing {missing}, extra {extra}")
    if problems:
        raise NeuronEditError(
            f"{len(problems)} file(s) do not have the study's channels: "
            f"{'; '.join(problems[:20])}. Rename or drop channels so that the names agree "
            "(reordering is fine); nothing was written.")
    return jobs


def _apply_study(args, study):
    """``neuronedit apply`` with a study: each file corrected as its own batch."""
    from tqdm import tqdm

    from neuronedit_tf.data.formats import infer_format, read, resolve_dataset, split_dataset, write
    from neuronedit_tf.study import correction_note

    jobs = _study_jobs(args, study)
    names = [name for _, _, name in jobs] if args.metadata else None
    destinations = _destinations([path for path, _, _ in jobs], args.out_dir, args.out_format,
                                 names)
    progress = tqdm(list(zip(jobs, destinations)), desc="correcting files", unit="file",
                    disable=len(jobs) < 2)
    for (path, batch, _), destination in progress:
        source_path, dataset = split_dataset(path)
        in_format = infer_format(source_path, args.format)
        if in_format == "hdf5":
            dataset = resolve_dataset(source_path, dataset)
        note = correction_note(batch, study.reference, study.columns_,
                               f"the study model {args.model}", study.method_,
                               study.editor.transform_name)
        edited = study.transform(read(path, args.format, mmap=False), batch=batch)
        out_format = args.out_format or in_format
        write(destination, edited, out_format, note=note,
              dataset=dataset if out_format == "hdf5" else None)
        progress.write(f"wrote {destination} (batch {batch})")


def _add_batch(args):
    from neuronedit_tf.data.formats import read
    from neuronedit_tf.data.metadata import pool
    from neuronedit_tf.editor import NeuronEditor
    from neuronedit_tf.errors import NeuronEditError
    from neuronedit_tf.study import Study

    study = NeuronEditor.load(args.model)
    if not isinstance(study, Study):
        raise NeuronEditError(f"{args.model} is an editor of one pair, not a study; add-batch "
                              "extends a study fitted with `neuronedit fit --metadata`.")
    if args.batch in study.batches and not args.overwrite:
        raise NeuronEditError(f"Batch {args.batch!r} is already in the study {args.model} "
                              f"({list(study.batches)}); pass --overwrite to replace its anchor, "
                              "or choose another --batch name.")
    anchor = pool([read(path, args.format) for path in args.anchor], args.anchor)
    study.add_batch(args.batch, anchor=anchor, overwrite=args.overwrite)
    path = study.save(args.out or args.model, overwrite=args.out is None)
    print(f"added batch {args.batch} ({len(args.anchor)} anchor file"
          f"{'s' if len(args.anchor) > 1 else ''}); the study's batches are "
          f"{list(study.batches)}; saved to {path}")


def _demo(args):
    from neuronedit_tf.demo import run_demo, summary

    editor = None
    if args.preset:
        from neuronedit_tf import zoo

        editor = zoo.load(args.preset)
        print(f"using the preset {args.preset} (no training)")
    print(summary(run_demo(args.out, epochs=args.epochs, seed=args.seed, editor=editor)))


def _export(args):
    from neuronedit_tf.editor import NeuronEditor

    model = NeuronEditor.load(args.model)
    batches = getattr(model, "batches", None)
    if batches is not None:
        print(f"a study of {len(batches)} batches {list(batches)}: serving_default takes "
              "features and each row's batch name")
    report = model.export(
        args.out, format=args.format, name=args.name, version=args.version,
        overwrite=args.overwrite, verify=args.verify, quantize=args.quantize, sample=args.sample,
    )
    print(f"exported to {report['path']}: {', '.join(report['files'])}")
    for artifact, figures in (report["parity"] or {}).items():
        print(f"  {artifact}: parity error {figures['max_error']:.3g} (max abs difference to "
              f"the Keras model {figures['max_abs']:.3g})")


BENCH_EXPERIMENTS = ("batch", "drugs", "images", "study", "speed")
RESULTS_PREAMBLE = """# Results: the paper's tables, regenerated on real data that ships in packages

Written by `neuronedit bench` (see each section for its exact command; `neuronedit bench all
--out benchmarks` regenerates every section, SPEED.md included). The paper's own data are not
available here, so each table is an analogue on real data whose truth is known; the paper's
numbers are quoted beside ours for reference only. Where neuron editing does not win, the
tables say so.
"""


def _bench(args):
    import importlib
    import time

    from neuronedit_tf.bench import report

    experiments = BENCH_EXPERIMENTS if args.experiment == "all" else (args.experiment,)
    seeds = None if args.seeds is None else tuple(_seeds(args.seeds))
    for name in experiments:
        started = time.time()
        command = f"neuronedit bench {name}" + (
            f" --out {args.out}" if args.out != "benchmarks" else "") + (
            f" --seeds {args.seeds}" if args.seeds else "")
        if name == "speed":
            _bench_speed(args, command)
        else:
            module = importlib.import_module(f"neuronedit_tf.bench.{name}")
            options = {} if seeds is None else {"seeds": seeds}
            section = module.run(args.out, quick=args.quick, command=command,
                                 log=lambda m: print(m, file=sys.stderr, flush=True), **options)
            path = report.write_results(args.out, [section], RESULTS_PREAMBLE)
            print(section.render())
            print(f"wrote {path}", file=sys.stderr)
        print(f"bench {name}: {time.time() - started:.0f} s", file=sys.stderr, flush=True)


#: ``neuronedit bench speed --quick``'s studies: a handful of batches, small anchors.
QUICK_STUDIES = {"cells": (200, 400), "batches": 4, "serving_rows": 8192, "serving_epochs": 1,
                 "anchor_cells": 500}


def _bench_speed(args, command):
    from neuronedit_tf.bench import speed
    from neuronedit_tf.errors import NeuronEditError

    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if not args.quick:
        speed.main(["--out", args.out] + (["--sections", args.sections] if args.sections else []),
                   prog="neuronedit bench speed")
        return
    if args.sections:
        try:
            sections = speed.parse_sections(args.sections)
        except argparse.ArgumentTypeError as error:
            raise NeuronEditError(f"--sections: {error}") from None
        speed.run_sections(sections, args.out, command=command + " --quick", log=log,
                           studies=QUICK_STUDIES, whole={"rows": 3000, "rounds": 1})
        with open(os.path.join(args.out, "SPEED.md")) as handle:
            print(handle.read())
        return
    figures = speed.run_speed(
        args.out, sizes=(3000, 6000), training_rows=(2000, 4096), percentile_shape=(10**4, 10),
        command=command + " --quick", export_rows=8192, demo_epochs=2, whole_fit_rows=3000,
        whole_fit_rounds=1, log=log, studies=QUICK_STUDIES)
    print(speed.render(figures))


def _seeds(text):
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        from neuronedit_tf.errors import NeuronEditError

        raise NeuronEditError(f"--seeds takes comma-separated integers, e.g. 0,1,2; got {text!r}.")
    return seeds


def _zoo(args):
    import json

    from neuronedit_tf import zoo

    if args.zoo_command == "list":
        for row in zoo.list_presets(args.index):
            where = "shipped" if row["shipped"] else "download"
            print(f"{row['name']:<18} {row['size'] / 1e6:5.2f} MB  {where:<8}  {row['description']}")
    elif args.zoo_command == "info":
        print(json.dumps(zoo.info(args.name, index=args.index), indent=2))
    elif args.zoo_command == "pull":
        path = zoo.pull(args.name, index=args.index, cache=args.cache_dir,
                        force_download=args.force_download)
        print(f"pulled {args.name} to {path}")
    elif args.zoo_command == "train":
        from neuronedit_tf.bench.presets import train

        metadata = train(args.name, args.out, epochs=args.epochs, seed=args.seed,
                             overwrite=args.overwrite)
        print(f"wrote the preset {args.name} to {args.out}")
        for key, value in metadata["metrics"].items():
            print(f"  {key}: {value:.4f}")


def _tensorflow_logs(verbose):
    """Where TensorFlow's C++ log lines go: hidden, or (``--verbose``) shown."""
    if verbose:
        return contextlib.nullcontext()
    from neuronedit_tf.native_logs import hidden_native_logs

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's logs after absl's start
    return hidden_native_logs()


HANDLERS = {"demo": _demo, "fit": _fit, "apply": _apply, "add-batch": _add_batch,
            "export": _export, "bench": _bench, "zoo": _zoo}


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _check_usage(parser, args)
    from neuronedit_tf.errors import NeuronEditError

    try:
        with _tensorflow_logs(args.verbose):
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
