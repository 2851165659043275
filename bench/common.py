"""What every benchmark section shares: the result table, timers, memory, data sets, garbling.

A section returns Rows; run.py prints them as one table (stage | ours | alternative | ratio)
and keeps the notes that explain each figure. Ratios are always "how many times better
ours is" (alternative / ours for times, ours / alternative for throughputs), so > 1 is a win.
"""

from __future__ import annotations

import json
import os
import random
import resource
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SCIFACT = SHARED / "datasets" / "scifact"
# A first question on the SciFact KB as people type them: its misspelled words make query repair look them up.
TYPO_QUESTION = "wat is the efect of vitamn D on bone dencity"


def default_workdir() -> Path:
    """Where large KBs are built and cached: ../scratch/hopfield-kb-bench beside the repo, else the temp dir.

    Never inside the repository: a 1M-chunk KB is several GB.
    """
    scratch = ROOT.parent / "scratch"
    base = scratch if scratch.is_dir() else Path(tempfile.gettempdir())
    return base / "hopfield-kb-bench"


@dataclass(frozen=True)
class Row:
    """One line of the table.

    stage: what was measured; ours / alt: formatted figures; ratio: times better (> 1 = ours wins),
    None when there is no alternative; note: one line saying what the alternative was and how.
    """

    stage: str
    ours: str
    alt: str = "-"
    ratio: float | None = None
    note: str = ""
    values: dict = field(default_factory=dict)


def ratio_time(ours_s: float, alt_s: float) -> float:
    return alt_s / ours_s if ours_s > 0 else float("inf")


def ratio_rate(ours: float, alt: float) -> float:
    return ours / alt if alt > 0 else float("inf")


def fmt_ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f} ms"


def fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def print_table(rows: Sequence[Row], out=sys.stdout) -> None:
    """The table as GitHub Markdown (readable in a terminal, pasteable into the README)."""
    cells = [(r.stage, r.ours, r.alt, "-" if r.ratio is None else f"{r.ratio:.2f}x") for r in rows]
    print_markdown(("stage", "ours", "alternative", "ratio"), cells, out)


def print_markdown(header: Sequence[str], cells: Sequence[Sequence[str]], out=sys.stdout) -> None:
    """header and rows of cells as a GitHub Markdown table, columns padded to their widest cell."""
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
    line = lambda c: "| " + " | ".join(v.ljust(w) for v, w in zip(c, widths)) + " |"  # noqa: E731
    print(line(header), file=out)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)
    for c in cells:
        print(line(c), file=out)


def shares(stage_seconds: dict[str, float]) -> str:
    """Each stage's share of their total, largest first: "embed 85.7%, parse 14.2%"."""
    total = sum(stage_seconds.values()) or 1.0
    return ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in sorted(stage_seconds.items(), key=lambda kv: -kv[1]))


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc), in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def latency(fn: Callable[[str], object], queries: Sequence[str]) -> np.ndarray:
    """Seconds of fn(q) for each query, one after another."""
    out = np.zeros(len(queries))
    for i, q in enumerate(queries):
        t = time.perf_counter()
        fn(q)
        out[i] = time.perf_counter() - t
    return out


def p50_p95(seconds: np.ndarray) -> tuple[float, float]:
    return float(np.median(seconds)), float(np.percentile(seconds, 95))


def load_now() -> float:
    return os.getloadavg()[0]


def machine() -> str:
    """CPU model, cores, the instruction sets that matter for the model, torch build."""
    import platform

    import torch

    model, flags = "unknown CPU", ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        for line in info.splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni") if f" {f}" in flags]
    return (
        f"{model}, {os.cpu_count()} cores, {' '.join(isa) or 'no AVX2'}; torch {torch.__version__}, "
        f"torch ISA {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads; "
        f"Python {platform.python_version()}"
    )


# ---- SciFact -------------------------------------------------------------------------------------


def have_scifact() -> bool:
    return (SCIFACT / "corpus.jsonl").exists()


def scifact_corpus() -> list[dict]:
    return [json.loads(line) for line in (SCIFACT / "corpus.jsonl").open(encoding="utf-8")]


def scifact_queries() -> tuple[list[str], list[str], list[set[str]], list[str]]:
    """(test query ids, test query texts, relevant doc ids per test query, all 1,109 query texts).

    The qrels file has a header line and CRLF line ends, as in BEIR.
    """
    texts = {}
    for line in (SCIFACT / "queries.jsonl").open(encoding="utf-8"):
        d = json.loads(line)
        texts[d["_id"]] = d["text"]
    qrels: dict[str, set[str]] = {}
    for i, line in enumerate((SCIFACT / "qrels" / "test.tsv").open(encoding="utf-8")):
        parts = line.strip().split("\t")
        if i == 0 or len(parts) != 3:
            continue
        if int(parts[2]) > 0:
            qrels.setdefault(parts[0], set()).add(parts[1])
    qids = sorted(qrels, key=int)
    return qids, [texts[q] for q in qids], [qrels[q] for q in qids], list(texts.values())


# ---- garbling ------------------------------------------------------------------------------------
# Seeded query corruptions, the same family the retrieval measurements used (typo-N: each letter
# with probability N% deleted, doubled with a random letter, replaced, or swapped with the previous
# one; truncate-50: the first half of the words). eval/ will own the canonical set; this copy only
# has to produce realistic work for the throughput figure.
CONDITIONS = ("clean", "typo-10", "typo-20", "truncate-50")


def _typo(text: str, p: float, rng: random.Random) -> str:
    out: list[str] = []
    for ch in text:
        if ch.isalpha() and rng.random() < p:
            op = rng.randrange(4)
            if op == 0:
                continue
            if op == 1:
                out += [ch, rng.choice(string.ascii_lowercase)]
                continue
            if op == 2:
                out.append(rng.choice(string.ascii_lowercase))
                continue
            if out:
                prev = out.pop()
                out += [ch, prev]
                continue
        out.append(ch)
    return "".join(out)


def garble(queries: Sequence[str], condition: str, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    if condition == "clean":
        return list(queries)
    if condition.startswith("typo-"):
        p = int(condition.split("-")[1]) / 100
        return [_typo(q, p, rng) for q in queries]
    if condition == "truncate-50":
        return [" ".join(q.split()[: max(1, len(q.split()) // 2)]) for q in queries]
    raise ValueError(f"unknown condition {condition!r}; use one of {CONDITIONS}")


def sample_questions() -> list[str]:
    from data import SAMPLE_QUESTIONS

    return [json.loads(line)["question"] for line in SAMPLE_QUESTIONS.read_text().splitlines() if line.strip()]


def run_json(module: str, *args: str, timeout: float = 1800) -> dict:
    """Run python -m bench.MODULE ARGS in a fresh process; its last stdout line is a JSON object."""
    cmd = [sys.executable, "-m", f"bench.{module}", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_kbs(workdir: Path, sizes: list[int], need_scifact: bool) -> dict:
    """(name -> (dir, build info)) for the KBs the chosen sections need, built in a helper process."""
    script = (
        "import json, sys\nfrom pathlib import Path\nfrom bench import kbs\n"
        "w = Path(sys.argv[1]); out = {'sample': kbs.sample_kb(w)}\n"
        "if sys.argv[2] == '1':\n"
        "    out['scifact'] = kbs.scifact_kb(w)\n"
        "    for n in map(int, filter(None, sys.argv[3].split(','))):\n"
        "        out[f'synthetic {n}'] = kbs.synthetic_kb(w, out['scifact'][0], n)\n"
        "print(json.dumps({k: [str(d), i] for k, (d, i) in out.items()}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(workdir), "1" if need_scifact else "0", ",".join(map(str, sizes))],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building the benchmark KBs failed:\n{proc.stderr[-3000:]}")
    return {k: (Path(d), info) for k, (d, info) in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
