"""`pillcheck batch INPUT... --out FILE`: every photo the inputs name -> rows in FILE, resumable, with progress."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pillcheck.batch import engines, inputs
from pillcheck.batch.output import Output

ENGINES = ("local", "ray")


@dataclass
class Summary:
    photos: int  # analysed in this run
    before: int  # photos already complete in the output when the run began (a resumed run skips them)
    errors: int  # photos of this run that could not be used
    seconds: float

    def line(self, out: Path) -> str:
        rate = f", {self.photos / self.seconds:.2f} photos/s" if self.photos and self.seconds else ""
        return (f"{self.photos} photos analysed in {self.seconds:.1f} s{rate} ({self.errors} could not be used; "
                f"{self.before} were already in {out.name}) -> {out}")


def run(sources: list[str], out: Path, job: engines.Job, engine: str = "local", address: str | None = None,
        actors: int | None = None, progress: bool = True) -> Summary:
    """Analyse every photo of ``sources`` not yet complete in ``out`` and append its rows there."""
    from tqdm import tqdm

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: {' or '.join(ENGINES)}")
    files = inputs.files(sources)
    t0 = time.perf_counter()
    with Output(out) as output:
        before, total = len(output.done), inputs.count(files, output.done)
        done = set(output.done)  # what to skip: fixed when the run starts (Ray ships it to its tasks)
        stream = (engines.run_local(files, done, job) if engine == "local"
                  else engines.run_ray(files, done, job, address=address, actors=actors))
        photos = errors = 0
        with tqdm(total=total, unit="photo", disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
            for rows in stream:
                output.write(rows)
                photos += 1
                errors += bool(rows[-1]["error"])
                bar.update()
    return Summary(photos, before, errors, time.perf_counter() - t0)
