"""Scale-out on one machine: images/s of one process vs Ray with 2 actors, and Ray's start-up cost.

One run each on the embedded world model (its default steps and guidance), the same work units
(PROMPTS x N seeds) into fresh run directories through `generate_into_run`, as the CLI does:
  - local: this process, torch's default threads (all cores), then again with one thread;
  - ray:   a local Ray (`ray.init(num_cpus=WORKERS)`), WORKERS actors with one CPU (one torch
           thread) each, each loading its own copy of the model.
Ray start-up overhead = seconds from calling ray.init to the first finished image (cluster
start, actor processes, model loads). The Ray images/s counts that overhead (end to end) and
without it (first image to last). Counts the PNGs that differ between runs: the world model's pixels can depend on the intra-op
thread count the process started with (1 level in a few pixels), so a Ray actor (one thread)
matches a one-thread local run, not necessarily an all-cores one.
Usage: python benchmarks/bench_scaleout.py [--n 8] [--workers 2] [--json benchmarks/results/scaleout.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

PROMPTS = [("p0", "two red circles", "en"), ("p1", "ein blaues Quadrat", "de"),
           ("p2", "un triangle vert", "fr"), ("p3", "三个黄色的圆", "zh")]


def _shas(run_dir: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (run_dir / "images").glob("*.png")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8, help="seeds per prompt (4 prompts)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default="world")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/scaleout.json"))
    args = ap.parse_args()

    import torch

    from neobabel.engines import RayRunner
    from neobabel.pipeline import BabelPipeline
    from neobabel.runs import RunDir, generate_into_run, units_for

    pipe = BabelPipeline.from_pretrained(args.model)
    params = pipe.resolve_params()
    units = units_for(PROMPTS, args.n, 0)
    result = {"model": args.model, "images": len(units), "params": params.as_dict(),
              "cpu_count": os.cpu_count(), "torch_threads_local": torch.get_num_threads(),
              "platform": platform.platform(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        local = generate_into_run(pipe, units, RunDir(tmp / "local"), params, progress=False)
        result["local"] = {"torch_threads": torch.get_num_threads(), "seconds": round(local.seconds, 3),
                           "images_per_s": round(local.generated / local.seconds, 3)}
        print("local", result["local"], flush=True)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # what each Ray actor gets (num_cpus=1 sets OMP_NUM_THREADS=1)
        one = generate_into_run(pipe, units, RunDir(tmp / "local1"), params, progress=False)
        torch.set_num_threads(threads)
        result["local_1_thread"] = {"torch_threads": 1, "seconds": round(one.seconds, 3),
                                    "images_per_s": round(one.generated / one.seconds, 3)}
        print("local, 1 thread", result["local_1_thread"], flush=True)

        import ray  # the [ray] extra: only this benchmark's second half needs it

        t_init = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        runner = RayRunner(pipe, {"source": args.model}, params, tmp / "ray", workers=args.workers)
        report = generate_into_run(pipe, units, RunDir(tmp / "ray"), params, progress=False,
                                   spec={"engine": "ray"}, runner=runner)
        t_end = time.perf_counter()
        runner.shutdown()
        ray.shutdown()
        startup = runner.first_image_at - t_init
        result["ray"] = {
            "workers": args.workers, "ray_version": ray.__version__,
            "startup_seconds_init_to_first_image": round(startup, 3),
            "seconds_end_to_end": round(t_end - t_init, 3),
            "images_per_s_end_to_end": round(report.generated / (t_end - t_init), 3),
            # The first image's batch is excluded from the steady rate (it is in the start-up).
            "images_per_s_after_first_image": round((report.generated - 1) / (t_end - runner.first_image_at), 3),
        }
        ray_shas = _shas(tmp / "ray")
        for name in ("local", "local1"):  # PNGs that differ from the Ray run's
            other = _shas(tmp / name)
            result[f"pngs_differing_ray_vs_{name}"] = sum(other.get(k) != v for k, v in ray_shas.items())
        print("ray", result["ray"], {k: v for k, v in result.items() if k.startswith("pngs_")}, flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
