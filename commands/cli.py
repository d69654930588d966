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
import re
import signal
import sys
import threading
from pathlib import Path

from nerveseg.engines import extras, interrupts, outputs
from nerveseg.engines.errors import UserError
from nerveseg.engines.metadata import EngineError
from nerveseg.realtime.cli_checks import OneLineParser, check_arguments

# name: (module, one-line help). Order is the order of `nerveseg --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("nerveseg.training.synth.cli", "generate synthetic stereoscope data (datasets, video)"),
    "data": ("nerveseg.training.data_cli", "check a dataset (layout, counts per class, bad files); write shared split lists"),
    "train": ("nerveseg.training.cli", "train the classifier gate or a segmenter"),
    "eval": ("nerveseg.training.eval_cli", "evaluate a model on a test split"),
    "export": ("nerveseg.training.exporters", "export a checkpoint to ONNX with metadata"),
    "calibrate": ("nerveseg.training.calibrate_cli",
                  "fit a gate's temperature and unfamiliar-view threshold on the validation split; write a new engine"),
    "replay": ("nerveseg.realtime.replay_cli", "replay a video or image folder to an annotated AVI"),
    "bench": ("nerveseg.commands.bench_cli", "benchmark: naive loop vs bare engines vs pipelined replay, live delays"),
    "run": ("nerveseg.realtime.run_cli", "run live on a camera (headless) with recording"),
    "repair": ("nerveseg.realtime.repair_cli", "rebuild the index of a recording cut short (crash, full disk)"),
    "view": ("nerveseg.ui.view_cli", "live operating-room window: overlay, latency, recording, region"),
    "info": ("nerveseg.engines.info_cli", "show an engine file's metadata and provenance"),
    "build-engine": ("nerveseg.commands.build_cli", "build a TensorRT engine (FP32/FP16/INT8) from an ONNX file"),
    "quantize": ("nerveseg.commands.quantize_cli", "INT8 engine for the CPU (static QDQ), checked against FP32"),
    "verify": ("nerveseg.commands.verify_cli", "check that two engines agree (logits, gate, mask IoU)"),
    "validate": ("nerveseg.commands.validate_cli", "validation report: accuracy, pixel degradation, delays, model card"),
    "extract": ("nerveseg.commands.extract_cli", "frames to label from a video: one per interval, cropped as the runtime crops, near-duplicates dropped"),
    "prelabel": ("nerveseg.commands.prelabel_cli", "the engines' labels and masks for a dataset, as COCO, CVAT and Supervisely"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nerveseg", description=__doc__.splitlines()[0].replace("``", ""))
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
    for each in parsers(parser):
        each.formatter_class = DefaultsFormatter
    return parser


class DefaultsFormatter(argparse.HelpFormatter):
    """Every option's default in its help, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default" in text.lower() or default is argparse.SUPPRESS
                or default in (None, False) or default == []):
            return text
        return f"{text} (default: %(default)s)"


def leaf(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the sub-command ``args`` came from (``nerveseg train gate``: gate's)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) in action.choices:
            return leaf(action.choices[getattr(args, action.dest)], args)
    return parser


def advice_that_fits(message: str, parser, args) -> str:
    """An error that advises a flag (``use --backend onnxruntime``) the command at hand does
    not have names the command that has it (``use nerveseg replay --backend onnxruntime``):
    errors come from shared layers that cannot know which command called them."""
    if parser is None or args is None:
        return message
    # The command's own options; where its sub-command cannot be told from ``args`` (no
    # dest), those of every sub-command below it: rewrite only what none of them has.
    own = {flag for node in parsers(leaf(parser, args))
           for action in node._actions for flag in action.option_strings}
    for flag in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", message)) - own):
        having = min((p.prog for p in parsers(parser) if flag in p._option_string_actions),
                     key=lambda prog: (prog != "nerveseg replay", len(prog.split())), default=None)
        if having:
            message = re.sub(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", f"{having} {flag}", message)
    return message


def parsers(parser: argparse.ArgumentParser):
    """``parser`` and every sub-command's parser below it, depth first."""
    yield parser
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from parsers(child)


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
    interrupts.clear_stop()
    previous = _stop_on_signals()
    name, parser, args = "nerveseg", None, None
    try:  # from the first import on: Ctrl-C while the parser loads its modules is a stop too
        parser = build_parser()
        args = parser.parse_args(argv)
        name = f"nerveseg {args.command}"
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s")
        check_arguments(args)
        # --resume continues a run in its own folder: writing into it is what was asked.
        exist_ok = getattr(args, "exist_ok", False) or getattr(args, "resume", False)
        with outputs.session(command_inputs(args), exist_ok=exist_ok):
            claim_outputs(args)
            code = int(args.handler(args) or 0)
            interrupts.check_stop()  # a stop whose KeyboardInterrupt was swallowed on the way
            sys.stdout.flush()  # a reader that left (`| head`) is told here, not at exit
            return code
    except Exception as exc:
        return _failed(exc, name, parser, args)
    except KeyboardInterrupt as exc:
        return _interrupted(exc, name)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = _unraisable_default


def _failed(exc: Exception, name: str, parser, args) -> int:
    """The exit status of a command that raised ``exc`` (its line printed). A failure raised
    after a stop signal came is the stop (the signal cut a library short, which said so in
    its own words): "interrupted", 130, as every stopped command."""
    if interrupts.is_stop(exc) or isinstance(exc, ImportError):
        return _interrupted(exc, name)
    if isinstance(exc, BrokenPipeError):
        # `nerveseg info MODEL | head`: the reader has what it wanted. Python would
        # complain again when it flushes stdout at exit, so stdout goes nowhere now.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell shows for a writer ended by SIGPIPE
    if isinstance(exc, UserError | EngineError | FileNotFoundError | PermissionError | IsADirectoryError):
        print(f"{name}: error: {advice_that_fits(one_line(exc), parser, args)}", file=sys.stderr)
        return 2
    if isinstance(exc, OSError):  # the machine, not the code: a full disk, a read-only folder
        print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    raise exc


def _interrupted(exc: BaseException, name: str) -> int:
    """130 and "interrupted" for a stop; an extra that is not installed is told as such."""
    missing = extras.missing_extra(exc)
    if missing is not None:
        print(f"{name}: error: {missing}", file=sys.stderr)
        return 2
    # An ImportError chained to a KeyboardInterrupt is a native module's import cut
    # short by Ctrl-C or SIGTERM; any other is a real error.
    if isinstance(exc, ImportError) and not interrupts.is_stop(exc) and \
            not isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
        raise exc
    if not isinstance(exc, KeyboardInterrupt):  # what the stop cut short, for --verbose
        logging.getLogger(__name__).debug("interrupted; the stop came out as %s", type(exc).__name__, exc_info=exc)
    print(f"{name}: interrupted", file=sys.stderr)
    return 130


def entry() -> None:
    """The console command: :func:`main`, with the process's own end (threads joined, files
    closed) guarded too. A signal there finds the outcome decided: it prints "interrupted"
    and exits with that outcome's code, never a traceback. An interrupted run ends at once
    (``os._exit`` after flushing): native threads a stop cut short must not abort the exit."""
    outcome = {"code": 130}
    if threading.current_thread() is threading.main_thread():
        def late(signum, frame) -> None:
            code = outcome["code"]
            word = "interrupted" if code == 130 else f"interrupted after the run was complete (exit code {code} stands)"
            print(f"nerveseg: {word}", file=sys.stderr, flush=True)
            os._exit(code)

        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, late)  # main() puts its own in place, then these back
    try:
        outcome["code"] = main()
    except KeyboardInterrupt:  # in the instant between main's handlers and these
        print("nerveseg: interrupted", file=sys.stderr)
    if outcome["code"] == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    # The outcome stands: a stop signal from here on is ignored. Python's finalization puts
    # the default action back on signals it handles (not on ignored ones), and a SIGTERM in
    # that last instant would otherwise end a complete run as "killed" (-15), not its code.
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    sys.exit(outcome["code"])


_unraisable_default = sys.unraisablehook


def _unraisable(info) -> None:
    """A stop's KeyboardInterrupt that landed in a destructor is recorded (see
    :func:`~nerveseg.engines.interrupts.check_stop`), not printed as a traceback."""
    if not (issubclass(info.exc_type, KeyboardInterrupt) and interrupts.stop_requested()):
        _unraisable_default(info)


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


def _stop_on_signals() -> dict:
    """SIGTERM (``kill``, a service manager, a closed session) stops a run as Ctrl-C does,
    also when Ctrl-C is ignored (started with ``nohup`` or ``&``); both are remembered
    (:func:`~nerveseg.engines.interrupts.request_stop`). Returns the handlers to restore
    (none off the main thread, where Python cannot set one)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    sys.unraisablehook = _unraisable
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, interrupts.request_stop)}
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # an ignored Ctrl-C stays ignored
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, interrupts.request_stop)
    return previous


def one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


if __name__ == "__main__":
    entry()
