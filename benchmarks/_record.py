"""The JSON record a benchmark prints and writes into ``benchmarks/results/``: what it
measured, with when, the command that measured it, and on what (cores, load average)."""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path


def write(measured: dict, out: Path | None) -> None:
    """Print the record of ``measured`` and write it to ``out`` (if given)."""
    record = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "cpu_cores": len(os.sched_getaffinity(0)),
        "load_average": os.getloadavg(),
        **measured,
    }
    text = json.dumps(record, indent=2) + "\n"
    print(text)
    if out:
        out.write_text(text)
