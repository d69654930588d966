"""The ``nerveseg`` command.

Each subcommand lives in its own module that defines ``add_arguments(parser)`` and
``run(args) -> int`` and imports its heavy packages (torch, Qt, TensorRT) inside
``run``, so ``nerveseg --help`` and the runtime commands never load a training stack.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from nerveseg.engines import extras, outputs
from nerveseg.engines.metadata import EngineError
from nerveseg.realtime.cli_checks import OneLineParser, check_arguments
from nerveseg.realtime.errors import UserError

# name: (module, one-line help). Order is the order of `nerveseg --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("nerveseg.training.synth.cli", "generate synthetic stereoscope data (datasets, video)"),
    "data": ("nerveseg.training.data_cli", "check a dataset (layout, counts per class, bad files); write shared split lists"),
    "train": ("nerveseg.training.cli", "train the classifier gate or a segmenter"),
    "eval": ("nerveseg.training.eval_cli", "evaluate a model on a test split"),
    "export": ("nerveseg.training.export", "export a checkpoint to ONNX with metadata"),
    "replay": ("nerveseg.realtime.replay_cli", "replay a video or image folder to an annotated AVI"),
    "bench": ("nerveseg.realtime.bench_cli", "benchmark: naive loop vs bare engines vs pipelined replay, live delays"),
    "run": ("nerveseg.realtime.run_cli", "run live on a camera (headless) with recording"),
    "repair": ("nerveseg.realtime.repair_cli", "rebuild the index of a recording cut short (crash, full disk)"),
    "view": ("nerveseg.ui.view_cli", "live operating-room window: overlay, latency, recording, region"),
    "info": ("nerveseg.engines.info_cli", "show an engine file's metadata and provenance"),
    "build-engine": ("nerveseg.engines.build_cli", "build a TensorRT engine (FP32/FP16/INT8) from an ONNX file"),
    "verify": ("nerveseg.engines.verify_cli", "check that two engines agree (logits, gate, mask IoU)"),
    "validate": ("nerveseg.realtime.validate_cli", "validation report: accuracy, pixel degradation, delays, model card"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nerveseg", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not exc.name or not exc.name.startswith("nerveseg"):
                raise
            continue  # a subcommand whose module is not part of this install
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        _add_to_every_command(command, "--exist-ok", action="store_true",
                              help="replace outputs that exist already (an input is never replaced)")
        command.set_defaults(handler=module.run)
    return parser


def _add_to_every_command(parser: argparse.ArgumentParser, *names: str, **options) -> None:
    """Add an option to ``parser`` or, where it has subcommands (``train seg``), to each
    of them, so that it is accepted after the last command word."""
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not nested:
        parser.add_argument(*names, **options)
        return
    for sub in {id(p): p for action in nested for p in action.choices.values()}.values():
        _add_to_every_command(sub, *names, **options)


def main(argv: list[str] | None = None) -> int:
    status = _main(argv)
    if argv is None:  # this process is the nerveseg command, not a test calling main()
        _leave_stuck_threads(status)
    return status


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    previous = _stop_on_sigterm()
    try:
        check_arguments(args)
        # --resume continues a run in its own folder: writing into it is what was asked.
        exist_ok = getattr(args, "exist_ok", False) or getattr(args, "resume", False)
        with outputs.session(command_inputs(args), exist_ok=exist_ok):
            claim_outputs(args)
            status = int(args.handler(args) or 0)
            sys.stdout.flush()  # a reader that left (`| head`) is told here, not at exit
            return status
    except BrokenPipeError:
        # `nerveseg info MODEL | head`: the reader has what it wanted. Python would
        # complain again when it flushes stdout at exit, so stdout goes nowhere now.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell shows for a writer ended by SIGPIPE
    except (UserError, EngineError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"nerveseg {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine, not the code: a full disk, a read-only folder
        print(f"nerveseg {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ImportError) as exc:
        missing = extras.missing_extra(exc)
        if missing is not None:
            print(f"nerveseg {args.command}: error: {missing}", file=sys.stderr)
            return 2
        # An ImportError chained to a KeyboardInterrupt is a native module's import cut
        # short by Ctrl-C or SIGTERM; any other is a real error.
        if isinstance(exc, ImportError) and not isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            raise
        print(f"nerveseg {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _leave_stuck_threads(status: int) -> None:
    """A pipeline thread stuck in native code (an engine call that never returns) is a
    daemon; the interpreter's clean-up would destroy the engine under it (ONNX Runtime
    then aborts the process). Everything is written and closed by now, so such a process
    ends here, with the status it was about to return."""
    stuck = [t for t in threading.enumerate() if t.daemon and t.is_alive() and t.name.startswith("nerveseg:")]
    if stuck:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:
                pass  # a reader that left: nothing more to tell it
        os._exit(status)


# Arguments that name what a command writes; every other path it is given is an input.
OUTPUT_ARGUMENTS = {"out", "record", "log", "json", "screenshot"}


def claim_outputs(args: argparse.Namespace) -> None:
    """Check every output the command was given before it opens anything: a folder (an
    existing one, or a name without a suffix) or a file. A command whose ``--out`` folder
    only collects new, time-stamped files (the view) sets ``collects_outputs``."""
    for dest in sorted(OUTPUT_ARGUMENTS & set(vars(args))):
        value = getattr(args, dest)
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            continue  # unset, or a flag (view --record)
        path = Path(value)
        if path.is_dir() or not path.suffix:
            outputs.claim_folder(path, collects=getattr(args, "collects_outputs", False))
        else:
            outputs.claim(path)


def command_inputs(args: argparse.Namespace) -> list[str]:
    """Every argument value that names an existing file or folder, outputs left out: the
    inputs no output of this command may overwrite (engines/outputs.py)."""
    found = []
    for dest, value in vars(args).items():
        if dest in OUTPUT_ARGUMENTS or dest == "handler":
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (str, os.PathLike)) and str(item):
                found.append(str(item))
    return found


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # the same clean stop as Ctrl-C: frames in flight written, outputs closed


def _stop_on_sigterm():
    """SIGTERM (``kill``, a service manager, a closed session) stops a run as Ctrl-C does,
    also when Ctrl-C is ignored (started with ``nohup`` or ``&``). Returns the handler to
    restore (None off the main thread, where Python cannot set one)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _terminate)


def one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
