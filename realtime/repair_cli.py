"""``nerveseg repair``: rebuild the index of an AVI that was cut short (a killed
process, a full disk).

A recording's frames reach the file as they are written (see
:class:`~nerveseg.realtime.sinks.AviRecorder`); what a killed process never writes is
the trailer: the ``idx1`` index and the header's frame count. FFmpeg-based players
(ffplay, mpv, VLC after a prompt) play such a file by scanning it; others refuse it or
cannot seek. ``repair`` copies every decodable frame, without re-encoding, into a new
AVI that has both, and says how many frames it kept.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nerveseg.engines import outputs
from nerveseg.engines.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="the AVI to repair")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, help="the repaired copy (default: INPUT.repaired.avi)")
    where.add_argument("--in-place", action="store_true", help="replace INPUT once the copy is complete")


def run(args: argparse.Namespace) -> int:
    src = args.input
    out = src if args.in_place else (args.out or src.with_suffix(".repaired.avi"))
    if not args.in_place:  # --in-place is the one asked-for replacement of an input
        outputs.claim(out)
    kept, dropped = repair(src, out)
    note = f", {dropped} undecodable packet(s) left out" if dropped else ""
    print(f"repaired {src}: {kept} frames{note} -> {out}")
    return 0


def repair(src: Path, dst: Path) -> tuple[int, int]:
    """Copy every decodable frame of ``src`` into ``dst``, a complete AVI (index and
    frame count written), packets as they are; the tags (engines' provenance) come
    along. Returns ``(frames kept, packets left out)``. ``dst`` appears only when
    complete (written beside it, then renamed), so ``dst == src`` is safe."""
    import av

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise UserError(f"{src}: file not found")
    if dst.suffix.lower() != ".avi":
        raise UserError(f"{dst}: the repaired file must be an .avi file")
    part = dst.with_name(dst.name + ".part")
    try:
        with av.open(str(src)) as inp:
            if not inp.streams.video:
                raise UserError(f"{src}: has no video stream")
            with av.open(str(part), "w", format="avi") as out:
                for key, value in inp.metadata.items():
                    out.metadata[key] = value
                kept, dropped = _copy(inp, out)
    except av.error.FFmpegError as exc:
        part.unlink(missing_ok=True)
        raise UserError(f"{src}: cannot repair ({' '.join(str(exc).split())})") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if kept == 0:
        part.unlink(missing_ok=True)
        raise UserError(f"{src}: no decodable frame to keep")
    os.replace(part, dst)
    return kept, dropped


def _copy(inp, out) -> tuple[int, int]:
    """Mux each packet of the first video stream that decodes; stop at the first
    unreadable stretch at the end (a killed writer's half-written last chunk)."""
    import av

    source = inp.streams.video[0]
    target = out.add_stream_from_template(source)
    kept = dropped = 0
    packets = inp.demux(source)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError:
            dropped += 1
            break
        if packet.size == 0:
            continue
        try:
            packet.decode()  # the check: only frames a player can show are kept
        except av.error.FFmpegError:
            dropped += 1
            continue
        packet.stream = target
        out.mux(packet)
        kept += 1
    return kept, dropped
