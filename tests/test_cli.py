"""The README's main job, small: ``scorecore demo`` writes a picture and a figure of merit."""

from __future__ import annotations

import re

from scorecore.cli import main


def test_demo_writes_a_png_and_prints_the_distance(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--n", "500", "--levels", "20", "--steps-each", "5", "--out", str(out), "--quiet"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    sw, floor = map(float, re.search(r"sliced W2\s+([\d.]+) to exact samples \(noise floor ([\d.]+)", text).groups())
    assert 0 < floor and sw < 3 * floor
