"""Running a batch: the same ``analyze_rows`` on every photo, here (``local``) or on Ray Data actors (``ray``).

Local: one Pipeline in this process, photo after photo, the models using every core. Ray: the files are read
by ``read_binary_files``, zips opened into their photos by ``flat_map``, and ``map_batches`` hands the photos
to a pool of actors, each holding one Pipeline (its models loaded once per actor; one core each, or one GPU
each where the cluster has GPUs). Rows come back to this process as each photo finishes and are written
there, so both engines write the same file the same way and resume the same way. Ray is imported only here,
only for ``--engine ray`` (the ``[scale]`` extra).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pillcheck import images
from pillcheck.batch import inputs
from pillcheck.batch.rows import report_rows
from pillcheck.safety.dur import Profile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """What every photo of a batch is analysed with (picklable: Ray ships it to the actors)."""

    db: Path
    models_dir: Path
    my_meds: list[str] = field(default_factory=list)
    profile: Profile | None = None
    conf: float = 0.35
    iou: float = 0.5


def analyze_rows(pipe, photo: inputs.Photo, job: Job) -> list[dict]:
    """One photo -> its rows; a photo that cannot be used (or fails) is an error row, never a stop. A missing
    or broken model is not the photo's fault: it stops the batch (``ModelError``)."""
    from pillcheck.inference.session import ModelError

    if photo.error:
        return report_rows(photo.id, None, photo.error)
    try:
        report = pipe.analyze(photo.data, job.my_meds, job.profile, conf=job.conf, iou=job.iou)
    except images.InputError as exc:
        return report_rows(photo.id, None, str(exc))
    except ModelError:
        raise
    except Exception as exc:  # one photo's unexpected failure is its row, the batch goes on
        log.exception("batch: a photo failed")
        return report_rows(photo.id, None, f"analysis failed ({exc.__class__.__name__})")
    return report_rows(photo.id, report.to_dict())


def run_local(files: list[Path], done: set[str], job: Job) -> Iterator[list[dict]]:
    """Each photo's rows, in input order."""
    from pillcheck.pipeline import Pipeline

    pipe = Pipeline(db=job.db, models_dir=job.models_dir)
    for path in files:
        if inputs.pending(str(path), done):
            for photo in inputs.photos(str(path), None, done):
                yield analyze_rows(pipe, photo, job)


class RayAnalyzer:
    """A Ray actor: one Pipeline, loaded once, for every batch of photos it is given."""

    def __init__(self, job: Job, threads: int) -> None:
        from pillcheck.inference.session import use_threads
        from pillcheck.pipeline import Pipeline

        use_threads(threads)  # before the models load (on the first photo)
        self.job, self.pipe = job, Pipeline(db=job.db, models_dir=job.models_dir)

    def __call__(self, batch: dict) -> dict:
        out = []
        for pid, data, error in zip(batch["id"], batch["data"], batch["error"]):
            photo = inputs.Photo(str(pid), None if error else bytes(data), str(error) or None)
            out.append(json.dumps(analyze_rows(self.pipe, photo, self.job), ensure_ascii=False))
        return {"rows": out}


def _exploder(ids: dict[str, str], done: set[str]) -> Callable[[dict], list[dict]]:
    """Ray's flat_map: a file read by ``read_binary_files`` -> its photos (a zip's entries), as rows."""
    def explode(row: dict) -> list[dict]:
        file_id = ids[str(Path(row["path"]).resolve())]
        return [{"id": p.id, "data": p.data or b"", "error": p.error or ""}
                for p in inputs.photos(file_id, row["bytes"], done)]
    return explode


def run_ray(files: list[Path], done: set[str], job: Job, address: str | None = None,
            actors: int | None = None) -> Iterator[list[dict]]:
    """Each photo's rows as the actors finish them (any order). A local Ray with this machine's cores unless
    ``address`` names a cluster (whose nodes need pillcheck, the catalog file and the models at the same paths)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False  # the command draws its own, per photo
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    todo = [p for p in files if inputs.pending(str(p), done)]
    if not todo:
        return
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 1), int(resources.get("GPU", 0))
    size = actors or gpus or max(1, int(cpus))
    threads = max(1, int(cpus) // size) if gpus else 1
    # more actors than cores (--actors): each asks for its share, or those beyond the cores would never start
    cores = 1 if gpus else min(1.0, cpus / size)
    ids = {str(p.resolve()): str(p) for p in todo}  # Ray names the files by their absolute paths
    # Reading and unzipping are I/O: they ask for no core, or the actors holding every core would starve them.
    ds = ray.data.read_binary_files(list(ids), include_paths=True,
                                    ray_remote_args={"num_cpus": 0})
    ds = ds.flat_map(_exploder(ids, done), num_cpus=0)
    ds = ds.map_batches(RayAnalyzer, fn_constructor_kwargs={"job": job, "threads": threads}, batch_size=1,
                        concurrency=size, num_cpus=cores, num_gpus=1 if gpus else 0)
    for row in ds.iter_rows():
        yield json.loads(row["rows"])
