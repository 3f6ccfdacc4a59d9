"""The HTML report rendered by a real headless Chromium: its three charts are laid out and painted."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from scheduler.reporting import report
from scheduler.core.clock import FrozenClock
from scheduler.core.runs import RunRecord
from scheduler.core.specs import ShapeSpec
from scheduler.store.store import Store
from tests.conftest import need_service

T0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
CHARTS = ("chart-daily", "chart-shapes", "chart-utilization")
BLUE, RED = (0x4E, 0x79, 0xA7), (0xE1, 0x57, 0x59)  # first palette colour; the under-30% utilization bars

CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const out = {};
  for (const fig of document.querySelectorAll("figure.chart")) {
    const svg = fig.querySelector("svg").getBoundingClientRect();
    const bars = [...fig.querySelectorAll("rect.bar")].filter(r => {
      const b = r.getBoundingClientRect(); return b.width > 0 && b.height > 0; });
    out[fig.id] = {width: svg.width, height: svg.height, bars: bars.length};
  }
  const pre = document.createElement("pre"); pre.id = "costwise-check";
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>
"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        need_service("Chromium", "no chromium on PATH; apt-get install chromium")
    return path


def run_chromium(binary: str, *args: str, tmp_path) -> subprocess.CompletedProcess:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, env={**os.environ, "HOME": str(tmp_path)})


def read_png_rgb(path) -> np.ndarray:
    """A small PNG decoder (8-bit RGB / RGBA, not interlaced): enough for Chromium's screenshots."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(height, width * bpp + 1)
    out = np.zeros((height, width * bpp), dtype=np.int32)
    prev = np.zeros(width * bpp, dtype=np.int32)
    for y in range(height):
        kind, cur = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 2:
            cur = (cur + prev) & 255
        elif kind in (1, 3, 4):
            cur = cur.copy()
            for x in range(len(cur)):
                a = cur[x - bpp] if x >= bpp else 0
                if kind == 1:
                    cur[x] = (cur[x] + a) & 255
                elif kind == 3:
                    cur[x] = (cur[x] + ((a + prev[x]) >> 1)) & 255
                else:
                    b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    cur[x] = (cur[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)[:, :, :3]


@pytest.fixture
def html_report(settings, tmp_path):
    store = Store.open(settings.db_url, FrozenClock(T0 + timedelta(days=10)))
    store.apply([ShapeSpec(name="small", vcpus=2, memory_gib=4, price_per_hour=0.2, capacity=2),
                 ShapeSpec(name="big", vcpus=16, memory_gib=64, price_per_hour=1.6, capacity=2)])
    for i in range(60):
        shape, price = ("big", 1.6) if i % 3 else ("small", 0.2)
        start = T0 + timedelta(days=i % 7, hours=i % 5)
        store.create_run(RunRecord(
            id=f"r-{i:04d}", job=f"job-{i % 4}", state="SUCCEEDED", shape=shape, backend="local",
            queued_at=start, started_at=start, ended_at=start + timedelta(minutes=30), duration_s=1800.0,
            cost_usd=price / 2, price_per_hour=price, cpu_util_avg=(i % 10) / 10 + 0.05, mem_peak_bytes=2**30,
            labels={"team": ["ml", "data", "search"][i % 3]},
        ))
    path = tmp_path / "report.html"
    report.write_report(store, "html", path)
    store.close()
    return path


def test_headless_chromium_lays_out_and_paints_every_chart(html_report, tmp_path):
    binary = chromium()
    checked = tmp_path / "checked.html"
    checked.write_text(html_report.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    proc = run_chromium(binary, "--dump-dom", checked.as_uri(), tmp_path=tmp_path)
    found = re.search(r'<pre id="costwise-check">(.*?)</pre>', proc.stdout)
    assert found, proc.stderr[-2000:]
    layout = json.loads(found.group(1).replace("&quot;", '"'))
    assert set(layout) == set(CHARTS)
    for chart in CHARTS:
        assert layout[chart]["width"] > 300 and layout[chart]["height"] > 50, (chart, layout[chart])
        assert layout[chart]["bars"] >= (7 if chart != "chart-shapes" else 2), (chart, layout[chart])

    # The report as a person sees it (the file alone, no check script): the bars' colours are on screen.
    shot = tmp_path / "report.png"
    proc = run_chromium(binary, "--window-size=1280,1100", f"--screenshot={shot}", html_report.as_uri(),
                        tmp_path=tmp_path)
    assert shot.exists(), proc.stderr[-2000:]
    pixels = read_png_rgb(shot)
    def painted(color):
        return int(np.all(np.abs(pixels - np.array(color)) <= 3, axis=2).sum())
    assert painted(BLUE) > 2000  # daily bars, the biggest shape's bar, the >30% utilization bins
    assert painted(RED) > 500  # under-30% utilization bins (and a team's daily bars)
    print(f"screenshot of the HTML report: {shot}")
