"""Writing the report: one self-contained HTML file (figures inline as base64 PNG), the
same sections as a PDF (matplotlib's ``PdfPages``: text pages and figure pages), and the
JSON with every number."""

from __future__ import annotations

import base64
import html
import io
import json
import textwrap
from pathlib import Path

from nerveseg.training.metrics import jsonable

from .sections import Section

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-bottom: .3em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: 12.5px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th { background: #f2f2f2; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 12.5px; color: #555; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: 12px; white-space: pre-wrap; }
ul.checks { list-style: none; padding: 0; font: 13px monospace; }
ul.checks li { padding: 3px 8px; margin: 2px 0; border-radius: 3px; }
li.pass { background: #e3f6e5; } li.fail { background: #fde2e1; font-weight: bold; }
nav a { margin-right: 1em; }
"""


def _block_html(block: tuple) -> str:
    kind, e = block[0], html.escape
    if kind == "h":
        return f"<h3>{e(block[1])}</h3>"
    if kind == "p":
        return f"<p>{e(block[1])}</p>"
    if kind == "pre":
        return f"<pre>{e(block[1])}</pre>"
    if kind == "list":
        return "<ul>" + "".join(f"<li>{e(item)}</li>" for item in block[1]) + "</ul>"
    if kind == "checks":
        return '<ul class="checks">' + "".join(
            f'<li class="{"pass" if c["passed"] else "fail"}">{e(c["line"])}</li>' for c in block[1]) + "</ul>"
    if kind == "table":
        head = "".join(f"<th>{e(h)}</th>" for h in block[1])
        rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block[2])
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if kind == "figure":
        f = block[1]
        data = base64.b64encode(f.png).decode("ascii")
        return (f'<figure id="fig-{e(f.id)}"><img alt="{e(f.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(f.caption)}</figcaption></figure>")
    raise ValueError(f"unknown block kind {kind!r}")


def write_html(path: Path, title: str, sections: list[Section]) -> Path:
    nav = "".join(f'<a href="#{html.escape(s.id)}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{html.escape(s.id)}"><h2>{html.escape(s.title)}</h2>'
                   + "".join(_block_html(b) for b in s.blocks) + "</section>" for s in sections)
    path.write_text(f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
                    f"</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><nav>{nav}</nav>"
                    f"{body}</body></html>\n", encoding="utf-8")
    return path


def write_json(path: Path, results: dict, sections: list[Section]) -> Path:
    index = [{"id": f.id, "section": s.id, "caption": f.caption} for s in sections for f in s.figures]
    path.write_text(json.dumps(jsonable({**results, "figures": index}), indent=1, default=str), encoding="utf-8")
    return path


# -- PDF ---------------------------------------------------------------------------------

WIDTH = 112  # characters per line on an A4 text page at the font size below
LINES = 80


def _table_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    if sum(widths) + 2 * len(widths) <= WIDTH:
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows]
    out = []  # too wide for a line: one record per row
    for row in rows:
        out += [textwrap.shorten(f"{h}: {c}", WIDTH, placeholder="…") for h, c in zip(header, row) if h or c]
        out.append("")
    return out


def _text_lines(section: Section) -> list[str]:
    lines = [section.title.upper(), ""]
    for block in section.blocks:
        kind = block[0]
        if kind in ("h", "p"):
            lines += textwrap.wrap(block[1], WIDTH) + [""]
        elif kind == "pre":
            lines += [piece for line in block[1].splitlines() for piece in (textwrap.wrap(line, WIDTH) or [""])]
        elif kind in ("list", "checks"):
            items = block[1] if kind == "list" else [c["line"] for c in block[1]]
            lines += [piece for item in items for piece in textwrap.wrap(f"- {item}", WIDTH)] + [""]
        elif kind == "table":
            lines += _table_lines(block[1], block[2]) + [""]
        elif kind == "figure":
            lines += textwrap.wrap(f"[figure: {block[1].caption}]", WIDTH) + [""]
    return lines


def write_pdf(path: Path, title: str, sections: list[Section]) -> Path:
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path, metadata={"Title": title, "Creator": "nerveseg validate"}) as pdf:
        for section in sections:
            lines = _text_lines(section)
            for start in range(0, len(lines), LINES):
                _text_page(pdf, lines[start:start + LINES])
            _figure_pages(pdf, section.figures)
    return path


A4 = (8.27, 11.69)


def _text_page(pdf, lines: list[str]) -> None:
    from .figures import _pyplot

    plt = _pyplot()
    page = plt.figure(figsize=A4)
    page.text(0.05, 0.97, "\n".join(lines), family="monospace", fontsize=7, va="top")
    pdf.savefig(page)
    plt.close(page)


def _figure_pages(pdf, figures: list) -> None:
    """The section's figures, stacked down A4 pages, each at its own aspect, caption below."""
    from matplotlib.image import imread

    from .figures import _pyplot

    plt, page, y = _pyplot(), None, 0.0
    for figure in figures:
        image = imread(io.BytesIO(figure.png), format="png")
        height = min(0.8, 0.9 * A4[0] / A4[1] * image.shape[0] / image.shape[1])
        if page is None or y - height - 0.06 < 0.02:
            if page is not None:
                pdf.savefig(page)
                plt.close(page)
            page, y = plt.figure(figsize=A4), 0.97
        ax = page.add_axes((0.05, y - height, 0.9, height))
        ax.imshow(image)
        ax.axis("off")
        page.text(0.05, y - height - 0.005, "\n".join(textwrap.wrap(figure.caption, 110)), fontsize=7, va="top")
        y -= height + 0.06
    if page is not None:
        pdf.savefig(page)
        plt.close(page)
