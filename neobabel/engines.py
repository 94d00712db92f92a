"""Execution engines: local (this process) and Ray (many machines).

Two shapes of work go to Ray: generation (:class:`RayRunner`, whose actors hold a pipeline and
write PNGs) and scoring (:class:`RayPool`, whose actors hold a classifier or scorer and return
results to the driver, which alone writes the label and score tables).

The Ray engine is a :data:`neobabel.generation.Runner`: the driver plans the run directory
under its lock exactly as a local run does, then hands the pending batches to a pool of Ray
actors. Each actor holds one loaded BabelPipeline (``num_gpus=1`` where the cluster has GPUs,
else one CPU) and writes each finished image through the same atomic PNG code as the local
loop (:func:`neobabel.generation.write_batch`), so the bytes are the same; it returns only
(key, sha256, seconds). The driver alone writes the manifest and run.json (``engine: ray``).
The run directory must be on a filesystem every actor sees (one machine, NFS, a shared volume).

Why actors and not Ray Data ``map_batches``: the expensive state is the loaded model, which
an actor keeps for its whole life, and the unit of output is a file we already write
atomically, not a dataset. Ray Data would add its streaming executor, Arrow blocks and
autoscaling of actor pools to a job that is a flat list of a few thousand batches, and would
hide the order of writes behind its own sinks; with actors the driver keeps the manifest, the
lock and resume logic it already has. Actors restart after a crash (``max_restarts``) and Ray
retries the batch in flight (``max_task_retries``): a retried batch rewrites the same bytes
under the same key, and rows are keyed by (key, prompt_id), so nothing is duplicated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from neobabel.errors import InputError
from neobabel.generation import write_batch
from neobabel.runs import clean_run_temp_files, key_params

ENGINES = ("local", "ray")
MAX_RESTARTS = 3
IN_FLIGHT_PER_ACTOR = 2


def _ray():
    try:
        import ray  # heavy and optional: the [ray] extra, only for --engine ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'neobabel[ray]'") from None
    return ray


def connect(address: str | None) -> tuple[int, int]:
    """Join (or start) Ray; -> (GPUs, CPUs) of the cluster."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    res = ray.cluster_resources()
    return int(res.get("GPU", 0)), int(res.get("CPU", 1))


def _check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")


def pool_size(workers: int | None, gpus: int, cpus: int) -> int:
    """How many actors: ``workers``, or one per GPU (else CPU). Each actor holds its GPU or CPU
    for its whole life, so actors beyond the cluster's would never start and the work queued
    on them would wait forever: refused with the number that fits."""
    have, unit = (gpus, "GPUs") if gpus else (cpus, "CPUs")
    if workers is not None and workers > have:
        raise InputError(f"--workers {workers} is more than the Ray cluster's {have} {unit} (one per actor); "
                         f"use --workers {have} or fewer, or add nodes to the cluster")
    return workers or max(1, have)


class _Worker:
    """One loaded pipeline in a Ray actor; makes batches and writes their PNGs into the run."""

    def __init__(self, load: dict, batch_invariant: bool, images_dir: str, params, param_dict: dict,
                 threads: int | None):
        import torch  # heavy: in the actor only (the driver has it already)

        from neobabel.pipeline import BabelPipeline  # heavy: torch + diffusers, in the actor only

        if threads:  # what num_cpus promises (Ray's OMP_NUM_THREADS), said outright: pixels can depend on it
            torch.set_num_threads(threads)
        self.pipe = BabelPipeline.from_pretrained(**load)
        self.pipe.set_batch_invariant(batch_invariant)
        self.images_dir, self.params, self.param_dict = Path(images_dir), params, param_dict

    def check(self) -> tuple[dict, dict]:
        """What enters image keys, as this actor sees it (compared with the driver's)."""
        return self.pipe.identity(), key_params(self.pipe, self.params)

    def run(self, batch, batch_size: int):
        return write_batch(self.pipe, batch, self.images_dir, self.params, self.param_dict, batch_size)


class RayRunner:
    """Runs the pending batches of one run on Ray actors; a `Runner` for generate_into_run.

    `load`: BabelPipeline.from_pretrained keyword arguments (source, device, attention, ...);
    the actors load on CUDA when the cluster has GPUs. `address`: None starts a local Ray
    (or joins the one this process already started), "auto" joins a running cluster.
    """

    def __init__(self, pipeline, load: dict, params, run_dir: Path, *, workers: int | None = None,
                 address: str | None = None, batch_size: int = 1):
        _check_workers(workers)
        gpus, cpus = connect(address)
        self.workers = pool_size(workers, gpus, cpus)
        self.device = "cuda" if gpus else "cpu"
        self.pipeline, self.params, self.batch_size = pipeline, params, batch_size
        self.param_dict = key_params(pipeline, params)
        self.run_dir = Path(run_dir)
        self.load = {**load, "device": self.device}
        self.options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
        self.threads = None if gpus else 1  # torch intra-op threads of a CPU actor (run.json: torch_threads)
        self.actors: list = []
        self.first_image_at: float | None = None

    def start(self) -> None:
        ray = _ray()
        cls = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(_Worker)
        self.actors = [cls.options(**self.options).remote(self.load, self.pipeline.batch_invariant,
                                                          str(self.run_dir / "images"), self.params,
                                                          self.param_dict, self.threads)
                       for _ in range(self.workers)]
        want = (self.pipeline.identity(), self.param_dict)
        for seen in ray.get([a.check.remote() for a in self.actors]):
            if tuple(seen) != want:
                raise InputError(f"the Ray actors load another model or params than this process "
                                 f"({seen} vs {want}); give --device to match the workers' device")

    def __call__(self, batches) -> Iterator[list]:
        ray = _ray()
        if not self.actors:
            self.start()
        queue = list(reversed(batches))
        running: dict = {}  # ObjectRef -> actor
        load = {a: 0 for a in range(len(self.actors))}
        try:
            while queue or running:
                for i, actor in enumerate(self.actors):  # keep each actor busy, a batch queued behind
                    while queue and load[i] < IN_FLIGHT_PER_ACTOR:
                        running[actor.run.remote(queue.pop(), self.batch_size)] = i
                        load[i] += 1
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    load[running.pop(ref)] -= 1
                    results = ray.get(ref)
                    if self.first_image_at is None:
                        self.first_image_at = time.perf_counter()
                    yield results
        finally:
            for ref in running:
                ray.cancel(ref)
            # Temporaries of actors that died mid-write: their processes are gone, so they go too.
            clean_run_temp_files(self.run_dir / "images")

    def shutdown(self) -> None:
        ray = _ray()
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []


class _Holder:
    """State built once in a Ray actor (a classifier, a scorer) and the calls made on it."""

    def __init__(self, factory, threads: int | None):
        if threads:
            import torch  # heavy: in the actor only

            torch.set_num_threads(threads)
        self.state = factory()

    def call(self, fn, item):
        return fn(self.state, item)


class RayPool:
    """Maps ``fn(state, item)`` over items on Ray actors that each build ``state = factory()`` once.

    For the scoring steps (``magbig classify``/``audit`` labelling, ``neobabel eval`` scoring):
    an actor keeps its loaded model for its whole life; results go back to the driver, which
    alone writes the run's tables (so the tables' crash-safety is the local code's). Results
    arrive in completion order as (index, result); a crashed actor restarts and Ray retries the
    item in flight, so each index is yielded once.
    """

    def __init__(self, factory, *, workers: int | None = None, address: str | None = None):
        _check_workers(workers)
        gpus, cpus = connect(address)
        self.workers = pool_size(workers, gpus, cpus)
        self.options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
        self.threads = None if gpus else 1
        ray = _ray()
        cls = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(_Holder)
        self.actors = [cls.options(**self.options).remote(factory, self.threads) for _ in range(self.workers)]

    def imap_unordered(self, fn, items) -> Iterator[tuple[int, object]]:
        ray = _ray()
        queue = list(reversed(list(enumerate(items))))
        running: dict = {}  # ObjectRef -> (actor index, item index)
        load = [0] * len(self.actors)
        try:
            while queue or running:
                for a, actor in enumerate(self.actors):
                    while queue and load[a] < IN_FLIGHT_PER_ACTOR:
                        index, item = queue.pop()
                        running[actor.call.remote(fn, item)] = (a, index)
                        load[a] += 1
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    a, index = running.pop(ref)
                    load[a] -= 1
                    yield index, ray.get(ref)
        finally:
            for ref in running:
                ray.cancel(ref)

    def shutdown(self) -> None:
        ray = _ray()
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
