"""The ``learnreg`` command line: ``register``, ``methods``, ``demo``, ``train`` and ``web``.

Errors a user can cause print one line ``learnreg: error: ...`` and exit with code 2; nothing is
written to the output folder then.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

from learnreg import __version__
from learnreg.device import DEVICE_CHOICES
from learnreg.errors import LearnRegError, RegistrationCancelled
from learnreg.methods import trained_methods
from learnreg.progress import CancelToken, TerminalProgressBar


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="where to compute: auto (the GPU when torch sees one, else the CPU), cpu, cuda, mps "
                             "(default: auto)")
    parser.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a method option, repeatable, e.g. -o iterations=50,30,10 -o image_loss=ncc (each "
                             "method's options, their values and defaults: 'learnreg methods --verbose')")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--no-scene", action="store_true",
                        help="do not write scene.mrb (the Slicer scene; needs slicer-core outside Slicer)")
    parser.add_argument("--log", metavar="FILE",
                        help="also write learnreg's log to FILE, with the warnings of VTK and ITK, which never "
                             "reach the terminal")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="learnreg", description="Deformable image registration in physical space.")
    parser.add_argument("--version", action="version", version=f"learnreg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    reg = sub.add_parser("register", help="register a moving image to a fixed image")
    reg.add_argument("--fixed", required=True, help="fixed image (NIfTI, NRRD, MHA)")
    reg.add_argument("--moving", required=True, help="moving image (NIfTI, NRRD, MHA)")
    reg.add_argument("--method", default="bspline",
                     help="registration method (default: bspline; all of them: 'learnreg methods')")
    reg.add_argument("--out", required=True,
                     help="output folder for warped.nii.gz, transform.h5, scene.mrb and report.json")
    reg.add_argument("--fixed-landmarks", help="fixed landmarks (.mrk.json, .fcsv, .csv)")
    reg.add_argument("--moving-landmarks", help="moving landmarks (.mrk.json, .fcsv, .csv)")
    _add_common(reg)

    methods = sub.add_parser("methods", help="list the registration methods")
    methods.add_argument("--verbose", "-v", action="store_true",
                         help="also list each method's options: meaning, allowed values and default, as -o takes them")

    demo = sub.add_parser("demo", help="register the bundled sample pairs and write results with PNG overviews")
    demo.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    demo.add_argument("--method", default="bspline", help="registration method (default: bspline)")
    demo.add_argument("--pairs", nargs="*", help="sample pairs to run (default: all)")
    _add_common(demo)

    trainer = sub.add_parser("train", help="train a learning-based method from a configuration file",
                             description="Train a network; under 'torchrun --nproc-per-node N' the processes train "
                                         "data-parallel.")
    trainer.add_argument("method", choices=sorted(trained_methods()), help="method to train")
    trainer.add_argument("--config", required=True, help="configuration file (.toml, or .yaml with PyYAML)")
    trainer.add_argument("--steps", type=int, help="override the configuration's [training] steps")
    trainer.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
                         help="override one value of the configuration (repeatable; paths relative to the "
                              "configuration file), e.g. --set model.variant=istn-e")
    trainer.add_argument("--restart", action="store_true",
                         help="start afresh even if the output folder holds a checkpoint (default: resume)")
    trainer.add_argument("--quiet", action="store_true", help="no progress bar")

    web = sub.add_parser("web", help="serve LearnReg's panel and Slicer's views to a browser (trame-slicer)",
                         description="Serve the web app until Ctrl-C; open the address it prints in a browser.")
    web.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 serves every "
                          "network the machine is on)")
    web.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080; 0: any free port)")
    web.add_argument("--data", metavar="DIR",
                     help="a folder whose images and landmark files the page lists (nothing outside it is read)")
    web.add_argument("--max-upload-mb", type=float, default=512, help="largest upload accepted (default: 512)")
    return parser


def _train(args: argparse.Namespace) -> int:
    import json

    from learnreg.methods import find_method

    trainer = find_method(args.method).trainer_function()
    bar = None if args.quiet else TerminalProgressBar()
    card = trainer(args.config, progress=bar, resume=not args.restart, steps=args.steps, overrides=args.overrides)
    if bar:
        bar.close()
    if card is not None:
        print(f"weights written: {card['weights_file']} (sha256 {card['sha256'][:12]}...)")
        print(json.dumps(card["validation"], indent=2))
    return 0


def _web(args: argparse.Namespace) -> int:
    from learnreg.errors import InputError

    try:
        from learnreg.web.app import serve
    except ImportError as exc:
        raise InputError(f"the web app needs trame-slicer ({exc.name} is missing); install it with "
                         "'pip install learnreg[web]'") from None
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} is not a port number; give one from 1 to 65535, or 0 for any free port")
    if args.max_upload_mb <= 0:
        raise InputError(f"--max-upload-mb {args.max_upload_mb:g} must be positive")
    serve(args.host, args.port, None if args.data is None else Path(args.data), int(args.max_upload_mb * 2**20),
          announce=lambda url: print(f"LearnReg web app on {url} (Ctrl-C stops it)", flush=True))
    return 0


def _print_methods(verbose: bool) -> None:
    import dataclasses

    from learnreg.methods import all_methods
    from learnreg.options import option_descriptions, option_value_text

    for name, method in all_methods().items():
        print(f"{name:12s} {method.description}")
        if verbose:
            descriptions = option_descriptions(method.options)
            for f in dataclasses.fields(method.options):
                print(f"    -o {f.name}={option_value_text(f.default)}")
                print(f"{'':8s}{descriptions.get(f.name, '(no description)')}")
            print()


def _run(args: argparse.Namespace) -> int:
    if args.command == "methods":
        _print_methods(args.verbose)
        return 0
    if args.command == "train":
        return _train(args)
    if args.command == "web":
        return _web(args)
    from learnreg.logs import library_messages_to_log, log_to_file
    from learnreg.options import options_from_pairs

    options = options_from_pairs(args.option)
    if args.log:
        log_to_file(args.log)
    cancel = CancelToken()
    signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    try:
        with library_messages_to_log() as terminal:  # VTK's and ITK's messages go to the log, not the terminal
            bar = None if args.quiet else TerminalProgressBar(terminal)
            if args.command == "register":
                from learnreg.pipeline import register_files

                run = register_files(args.fixed, args.moving, args.method, args.out,
                                     fixed_landmarks=args.fixed_landmarks, moving_landmarks=args.moving_landmarks,
                                     device=args.device, options=options, progress=bar, cancel=cancel,
                                     scene=not args.no_scene)
                if bar:
                    bar.close()
                _summarise(run.report, Path(args.out))
            else:
                from learnreg.demo import run_demo

                for run, folder in run_demo(Path(args.out), args.method, args.pairs, args.device, options, bar,
                                            cancel, scene=not args.no_scene):
                    if bar:
                        bar.close()
                    _summarise(run.report, folder)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return 0


def _summarise(report: dict, folder: Path) -> None:
    line = f"{report['method']} on {report['device']}: {report['timings_s']['total']:.2f} s, " \
           f"{report['parameter_count']} transformation parameters"
    if "tre_mm" in report:
        tre_mm = report["tre_mm"]
        one_pass = f"{tre_mm['one_pass']['mean']:.2f} (one pass) -> " if "one_pass" in tre_mm else ""
        line += f", mean TRE {tre_mm['before']['mean']:.2f} -> {one_pass}{tre_mm['after']['mean']:.2f} mm"
    line += f", det J <= 0 on {report['folding']['percent_nonpositive_jacobian']:.3f} % of voxels"
    print(line)
    for note in report.get("notes", []):
        print(f"  note: {note}")
    print(f"  results in {folder}/: {', '.join(report['outputs'].values())}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except RegistrationCancelled:
        print("\nlearnreg: cancelled; nothing was written", file=sys.stderr)
        return 130
    except LearnRegError as exc:
        print(f"\nlearnreg: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
