"""What every report shares: PNG bytes of a figure, the markdown subset the reports write, and
self-contained HTML pages."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path


def fmt_or_dash(value: float | None, spec: str) -> str:
    """`value` formatted by `spec`, or a dash where there is none."""
    return "—" if value is None else format(value, spec)


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (reports run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed (pyplot keeps every open one alive)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def html_document(title: str, body: str) -> str:
    """A self-contained page: `title` as heading, `body` (HTML) below."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}img{max-width:100%;margin:1em 0}"
        f"</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def write_page(
    run_dir: Path, stem: str, lines: list[str], image: bytes, more_images: dict[str, bytes] | None = None
) -> None:
    """STEM.md (its plot in plots/STEM.png, any `more_images` in plots/NAME.png) and a self-contained
    STEM.html with every plot inlined, from markdown `lines` whose first line is the `# title`."""
    (run_dir / "plots").mkdir(parents=True, exist_ok=True)
    images = {stem: image, **(more_images or {})}
    for name, data in images.items():
        (run_dir / "plots" / f"{name}.png").write_bytes(data)
    (run_dir / f"{stem}.md").write_text("\n".join(lines) + "\n")
    figures = "".join(
        f'<img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
        for name, data in images.items()
    )
    title = lines[0].removeprefix("# ").replace("`", "")
    (run_dir / f"{stem}.html").write_text(html_document(title, markdown_to_html(lines[1:]) + figures))


def markdown_to_html(lines: list[str]) -> str:
    """The report's own markdown sections (headings, tables, bullets, paragraphs) as HTML; images skipped."""
    out, table = [], []
    for line in lines + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                tag = "th" if not table else "td"
                table.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if table:
            out.append("<table>" + "".join(table) + "</table>")
            table = []
        text = html.escape(line.replace("`", "").replace("**", ""))
        if line.startswith("## "):
            out.append(f"<h2>{text[3:]}</h2>")
        elif line.startswith("- "):
            out.append(f"<p>• {text[2:]}</p>")
        elif line and not line.startswith("!["):
            out.append(f"<p>{text}</p>")
    return "".join(out)
