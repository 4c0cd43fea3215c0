"""Run notebooks top to bottom in a fresh kernel and store them with their outputs.

    python scripts/run_notebook.py notebooks/10_ddpm.ipynb [more.ipynb ...]

Besides executing (as ``jupyter nbconvert --execute --inplace`` does), it stores each cell's
text streams as a reader will see them: consecutive stream outputs of one kind are joined and
every line overwritten with a carriage return is replaced by its last state, so that a progress
bar is stored as ``100% ...`` rather than as fifty frames. It prints each notebook's wall time.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def settle(text: str) -> str:
    """The text a terminal would show: each line keeps what follows its last carriage return."""
    text = re.sub(r"\r+\n", "\n", text)
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def coalesce(outputs: list) -> list:
    """Join consecutive stream outputs of the same name and settle their carriage returns."""
    merged: list = []
    for out in outputs:
        if out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream":
            if merged[-1]["name"] == out["name"]:
                merged[-1]["text"] += out["text"]
                continue
        merged.append(out)
    for out in merged:
        if out.get("output_type") == "stream":
            out["text"] = settle(out["text"])
    return [o for o in merged if not (o.get("output_type") == "stream" and not o["text"].strip())]


def run(path: Path, timeout: int = 900) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    elapsed = time.perf_counter() - start
    nb.metadata.pop("widgets", None)  # saved widget state is an old run's, never this one's
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = coalesce(cell.outputs)
    nbformat.write(nb, path)
    return elapsed


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {run(Path(name)):.0f} s", flush=True)
