"""The run's report.html in a real headless browser (Debian's `chromium`): it renders, every image loads,
nothing is written to the console, and it fits a 1280-pixel window (no sideways scrolling). Skipped where no chromium is installed (`apt-get install chromium`)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH = 1280  # a laptop screen: the report must fit without scrolling sideways
CHECK = """<script>
window.addEventListener('load', () => {
  const images = [...document.images];
  const broken = images.filter(i => !i.complete || i.naturalWidth === 0).length;
  const width = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
  document.title = `CHECKED images=${images.length} broken=${broken} tables=${document.querySelectorAll('table').length} width=${width}`;
});
</script>"""


def browse(page, tmp_path, *flags):
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *flags, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")
def test_the_report_renders_with_every_image_and_no_console_error(smoke_run, tmp_path):
    page = tmp_path / "report.html"
    page.write_text((smoke_run / "report.html").read_text().replace("</body>", CHECK + "</body>"))
    done = browse(
        page,
        tmp_path,
        "--dump-dom",
        "--virtual-time-budget=5000",
        "--enable-logging=stderr",
        "--v=0",
        f"--window-size={WIDTH},900",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    title = re.search(
        r"<title>CHECKED images=(\d+) broken=(\d+) tables=(\d+) width=(\d+)</title>", done.stdout
    )
    assert title, done.stdout[:500]
    images, broken, tables, width = map(int, title.groups())
    assert (
        images == 4 and broken == 0 and tables >= 4
    )  # curves, trade-off, sizes, block scores; 3 metric tables
    assert width <= WIDTH  # nothing scrolls sideways at 1280 px
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    shot = tmp_path / "shot.png"
    assert (
        browse(
            smoke_run / "report.html", tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},900"
        ).returncode
        == 0
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
