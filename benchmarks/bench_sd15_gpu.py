"""GPU speed of SD 1.5-architecture generation (issue 24): bare diffusers vs BabelPipeline.

SD 1.5's UNet (860M), VAE (84M) and CLIP ViT-L/14 text encoder (123M) are built from the
published architecture configs with random weights (nothing is downloaded), and generate at
512x512, 25 DPM-Solver++ steps, classifier-free guidance 7.5, in float16 and bfloat16. One run
measures, per dtype, in priority order:

1. bare diffusers defaults: StableDiffusionPipeline, SDPA (diffusers' default), batch 1;
2. BabelPipeline (native mode, same components) at batch 1 with SDPA, SDPA + channels_last,
   and xformers + channels_last when xformers is installed;
3. a batch sweep (1,4,8,16) of the best of those; the best batch is the one with most images/s;
4. bare diffusers at that batch (the like-for-like memory comparison);
5. ``torch.compile`` of the UNet at the best batch: compile time apart from steady state;
6. tower overhead: BabelPipeline in tower mode (an XLM-R-base-sized random encoder + MLP
   adapter) vs native mode, same UNet, calls interleaved; plus the two text encoders alone.

Also: the GPU's bf16 matmul throughput (an 8192^3 product loop), and FLOPs per image counted
with torch.utils.flop_counter (UNet step x 2 for CFG x steps + VAE decode + text encoders),
giving the fraction of the matmul limit each configuration reaches. The issue's goals are
printed with pass/fail. A time budget (--budget-s) skips any step that would not finish in
time, so one device call always returns numbers; the JSON is rewritten after every step.

  python benchmarks/bench_sd15_gpu.py --json benchmarks/results/sd15_gpu.json   # on a GPU
  python benchmarks/bench_sd15_gpu.py --tiny --json /tmp/tiny.json             # CPU dry run

--tiny: tiny UNet/VAE/text configs, 32x32, 2 steps, float32 on CPU, torch.compile with the
"eager" backend (dynamo only), so every code path runs in seconds without a GPU.
Runs without polars/streamlit (the GPU machine's image lacks them): only torch, transformers,
tokenizers, diffusers and pydantic are needed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

STARTED = time.perf_counter()  # the budget counts from process start: imports and builds too

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)
SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512], scaling_factor=0.18215,
)
SD15_TEXT = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                 max_position_embeddings=77, vocab_size=49408, projection_dim=768, hidden_act="quick_gelu")
# xlm-roberta-base's architecture (278M parameters, 192M of them the 250k-token embedding).
XLMR_BASE = dict(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1)

# One block each way: torch.compile's tracing time grows with the module count (the CPU test).
TINY_UNET = dict(
    sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8,),
    down_block_types=("CrossAttnDownBlock2D",), up_block_types=("CrossAttnUpBlock2D",),
    cross_attention_dim=32, attention_head_dim=2, norm_num_groups=4,
)
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, sample_size=64,
    down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    block_out_channels=[8, 16], norm_num_groups=4, scaling_factor=0.18215,
)
TINY_TEXT = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                 max_position_embeddings=77, vocab_size=49408, projection_dim=32, hidden_act="quick_gelu")
TINY_XLMR = dict(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=37, max_position_embeddings=80, type_vocab_size=1)

# The issue's goals (issue 24, "GPU speed").
GOAL_SPEEDUP = 2.0  # BabelPipeline's best images/s over bare diffusers defaults
GOAL_MATMUL_FRACTION = 0.40  # achieved FLOP/s over the measured bf16 matmul FLOP/s
GOAL_TOWER_OVERHEAD_PCT = 2.0  # seconds per image, tower over native
ISSUE_TFLOP_PER_IMAGE = 40.0  # the issue's estimate, reported beside the counted value
PROMPT = "a photo of the face of a doctor"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass
class Settings:
    tiny: bool
    device: str
    size: int
    steps: int
    guidance: float
    dtypes: list[str]
    batches: list[int]
    reps: int
    budget_s: float
    compile_mode: str
    compile_backend: str
    compile_scope: str  # "full" UNet | "regional" (its transformer blocks: faster to compile)
    compile_estimate_s: float
    matmul_n: int
    matmul_iters: int
    pair_reps: int  # interleaved native/tower pairs for the tower overhead
    scheduler: str = "DPMSolverMultistepScheduler (dpmsolver++)"


@dataclass
class Run:
    """One timed configuration: the median of `reps` calls after one warm-up call."""
    dtype: str
    pipeline: str  # "bare" (diffusers) | "ours" (BabelPipeline)
    mode: str  # "native" | "tower"
    attention: str
    channels_last: bool
    compiled: bool
    batch: int
    images_per_s: float
    s_per_image: float
    peak_gib: float | None  # None on CPU: no allocator statistics there
    times_s: list[float]
    # A native/tower pair timed interleaved (tower overhead): no peak memory, not a 'best' candidate.
    paired: bool = False
    achieved_tflops: float | None = None
    fraction_of_matmul: float | None = None

    @property
    def label(self) -> str:
        parts = [self.pipeline, self.mode, self.attention] + (["channels_last"] if self.channels_last else [])
        return "+".join(parts + (["compile"] if self.compiled else [])) + f"@b{self.batch}"


@dataclass
class Report:
    settings: Settings
    environment: dict
    matmul: dict = field(default_factory=dict)
    flops: dict = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    compile: dict = field(default_factory=dict)  # dtype -> {compile_s, first_call_s, steady_call_s}
    tower: dict = field(default_factory=dict)  # dtype -> encoder-only and end-to-end overhead
    summary: dict = field(default_factory=dict)  # dtype -> headline numbers
    goals: dict = field(default_factory=dict)  # dtype -> [{name, target, value, pass}]
    skipped: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    complete: bool = False

    def as_dict(self) -> dict:
        out = asdict(self)
        for row, run in zip(out["runs"], self.runs):
            row["label"] = run.label
        out["elapsed_s"] = round(time.perf_counter() - STARTED, 1)
        out["benchmark"] = "bench_sd15_gpu"
        return out


class Budget:
    """Skips a step whose estimated time would run past the budget (counted from process start)."""

    def __init__(self, budget_s: float, reserve_s: float = 5.0):
        self.budget_s = budget_s
        self.reserve_s = reserve_s  # writing the JSON and printing the summary

    def elapsed(self) -> float:
        return time.perf_counter() - STARTED

    def fits(self, estimate_s: float) -> bool:
        return self.elapsed() + estimate_s + self.reserve_s <= self.budget_s


def sig(x: float, digits: int = 4) -> float:
    """Rounded to significant digits: tiny CPU runs and GPU runs differ by 10^6 in scale."""
    return float(f"{x:.{digits}g}")


def write_json(path: Path, data: dict) -> None:
    # Atomic (temp file + rename) so a run killed mid-write leaves the previous complete JSON;
    # not neobabel.atomicfiles, which imports polars, absent on the GPU machine.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# -- device helpers ----------------------------------------------------------------------
def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if device == "cuda" else None


def free_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


# -- models --------------------------------------------------------------------------------
def build_native(settings: Settings, dtype: torch.dtype):
    """StableDiffusionPipeline with random weights, built directly on the device (fast on a GPU)."""
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from neobabel.builtins import build_clip_tokenizer

    unet_cfg, vae_cfg, text_cfg = (TINY_UNET, TINY_VAE, TINY_TEXT) if settings.tiny else (SD15_UNET, SD15_VAE, SD15_TEXT)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_clip_tokenizer(Path(tmp) / "tok")
    with torch.device(settings.device):
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderKL(**vae_cfg)
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                              algorithm_type="dpmsolver++", steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(settings.device, dtype)


def build_tower(settings: Settings, dtype: torch.dtype, cross_attention_dim: int):
    """An XLM-R-base-sized random encoder + MLP adapter to the UNet's width (77 tokens, like CLIP)."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from neobabel.builtins import FIXTURE_CORPUS
    from neobabel.tower import MultilingualTower, TowerConfig, train_subword_tokenizer

    tokenizer = train_subword_tokenizer(FIXTURE_CORPUS, vocab_size=300, model_max_length=77)
    cfg = dict(TINY_XLMR if settings.tiny else XLMR_BASE)
    cfg["vocab_size"] = max(cfg["vocab_size"], len(tokenizer))
    torch.manual_seed(1)
    with torch.device(settings.device):
        encoder = XLMRobertaModel(XLMRobertaConfig(
            **cfg, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id)).eval()
        tower = MultilingualTower(encoder, tokenizer, TowerConfig(adapter="mlp", out_dim=cross_attention_dim,
                                                                 max_length=77))
    return tower.to(settings.device, dtype).eval()


def set_layout(pipe, channels_last: bool) -> None:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    pipe.unet.to(memory_format=fmt)
    pipe.vae.to(memory_format=fmt)


# -- measurements ----------------------------------------------------------------------------
def matmul_throughput(settings: Settings) -> dict:
    """TFLOP/s of a square matmul loop: bf16 on a GPU (the issue's limit), float32 on CPU."""
    dtype = torch.bfloat16 if settings.device == "cuda" else torch.float32
    n = settings.matmul_n
    a = torch.randn(n, n, device=settings.device, dtype=dtype)
    b = torch.randn(n, n, device=settings.device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(settings.device)
    t0 = time.perf_counter()
    for _ in range(settings.matmul_iters):
        a @ b
    synchronize(settings.device)
    seconds = time.perf_counter() - t0
    del a, b
    return {"dtype": str(dtype).removeprefix("torch."), "n": n, "iters": settings.matmul_iters,
            "tflops": sig(2 * n**3 * settings.matmul_iters / seconds / 1e12)}


@torch.no_grad()
def count_flops(settings: Settings, pipe, tower) -> dict:
    """FLOPs per image at these settings, counted on one batch-1 image's work."""
    from torch.utils.flop_counter import FlopCounterMode

    dev, dtype = settings.device, pipe.unet.dtype
    latent = settings.size // pipe.vae_scale_factor
    lat = torch.randn(2, pipe.unet.config.in_channels, latent, latent, device=dev, dtype=dtype)  # CFG: 2 rows
    ids = pipe.tokenizer([PROMPT, ""], padding="max_length", max_length=77, truncation=True,
                         return_tensors="pt").input_ids.to(dev)

    def count(fn) -> int:
        with FlopCounterMode(display=False) as counter:
            fn()
        return int(counter.get_total_flops())

    text = count(lambda: pipe.text_encoder(ids))
    cond = pipe.text_encoder(ids)[0]
    unet_step = count(lambda: pipe.unet(lat, torch.tensor(500, device=dev), encoder_hidden_states=cond))
    vae = count(lambda: pipe.vae.decode(lat[:1] / pipe.vae.config.scaling_factor))
    tower_flops = count(lambda: tower.encode([PROMPT, ""])) if tower is not None else None
    unet = unet_step * settings.steps
    per_image = unet + vae + text
    return {
        "unet_cfg_step": unet_step, "unet": unet, "vae_decode": vae, "text_encoders": text,
        "tower_encoders": tower_flops, "per_image": per_image, "per_image_tflop": sig(per_image / 1e12),
        "per_image_tower_mode": unet + vae + tower_flops if tower_flops is not None else None,
        "issue_estimate_tflop": ISSUE_TFLOP_PER_IMAGE,
        "counted_over_issue_estimate": sig(per_image / 1e12 / ISSUE_TFLOP_PER_IMAGE),
        "how": (f"torch.utils.flop_counter on one UNet call at batch 2 (CFG) x {settings.steps} steps, "
                f"one VAE decode, CLIP on prompt + negative prompt; {settings.size}x{settings.size}"),
    }


def timed(settings: Settings, fn, batch: int, reps: int | None = None, warm: bool = True):
    """(median seconds per call, all times, peak GiB over the timed calls)."""
    if warm:
        fn()  # cuDNN autotune, allocator growth, lazy inits
    reset_peak(settings.device)
    times = []
    for _ in range(reps or settings.reps):
        t0 = time.perf_counter()
        fn()
        synchronize(settings.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), [round(t, 4) for t in times], peak_gib(settings.device)


def bare_call(settings: Settings, pipe, batch: int):
    # diffusers' defaults: one prompt list, no generators, PIL output.
    def run():
        pipe([PROMPT] * batch, num_inference_steps=settings.steps, guidance_scale=settings.guidance,
             height=settings.size, width=settings.size)
    return run


def ours_call(settings: Settings, babel, batch: int):
    def run():
        babel.generate([PROMPT] * batch, "en", 0, batch_size=batch, steps=settings.steps,
                       guidance=settings.guidance, width=settings.size, height=settings.size)
    return run


def attention_options(settings: Settings) -> list[tuple[str, bool]]:
    from neobabel.backbones import xformers_available

    options = [("sdpa", False), ("sdpa", True)]
    if settings.device == "cuda" and xformers_available():
        options.append(("xformers", True))
    return options


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny configs, 32x32, 2 steps, float32 on CPU")
    ap.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    ap.add_argument("--reps", type=int, default=None, help="timed calls per configuration (default 3; 1 tiny)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--dtypes", default=None, help="comma list (default float16,bfloat16; float32 tiny)")
    ap.add_argument("--batches", default=None, help="batch sweep (default 1,4,8,16; 1,2 tiny)")
    ap.add_argument("--budget-s", type=float, default=420.0,
                    help="skip steps that would end past this many seconds from start (default 420)")
    ap.add_argument("--compile-mode", default="default",
                    help="torch.compile mode for the UNet (max-autotune takes minutes to tune)")
    ap.add_argument("--compile-scope", choices=("full", "regional"), default="full",
                    help="compile the whole UNet, or only its repeated transformer blocks (quicker to compile)")
    ap.add_argument("--compile-backend", default=None, help="default inductor (eager with --tiny)")
    ap.add_argument("--compile-estimate-s", type=float, default=None,
                    help="time a compile is assumed to take, for the budget (default 150; 20 tiny)")
    ap.add_argument("--json", type=Path, help="write the report here (also $OUT/bench_sd15_gpu.json when OUT is set)")
    args = ap.parse_args(argv)

    tiny = args.tiny
    settings = Settings(
        tiny=tiny, device=args.device or ("cpu" if tiny else "cuda"),
        size=args.size or (32 if tiny else 512), steps=args.steps or (2 if tiny else 25), guidance=7.5,
        dtypes=(args.dtypes or ("float32" if tiny else "float16,bfloat16")).split(","),
        batches=sorted({int(b) for b in (args.batches or ("1,2" if tiny else "1,4,8,16")).split(",")}),
        reps=args.reps or (1 if tiny else 3), budget_s=args.budget_s, compile_mode=args.compile_mode,
        compile_backend=args.compile_backend or ("eager" if tiny else "inductor"),
        compile_scope=args.compile_scope,
        compile_estimate_s=args.compile_estimate_s or (20.0 if tiny else 150.0),
        matmul_n=256 if tiny else 8192, matmul_iters=5 if tiny else 100,
        pair_reps=args.reps or (1 if tiny else 5),
    )
    bad = [d for d in settings.dtypes if d not in DTYPES]
    if bad:
        sys.exit(f"bench_sd15_gpu: unknown dtype {bad[0]!r}; use float16, bfloat16 or float32")
    if settings.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_sd15_gpu: needs a CUDA GPU (torch sees none); run it on the GPU machine, "
                 "or pass --tiny for the CPU dry run")

    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()  # random weights: "keep in float32" notes are noise here

    from neobabel.backbones import xformers_available

    xformers_version = None
    if xformers_available():
        import xformers

        xformers_version = xformers.__version__
    environment = {
        "device_name": torch.cuda.get_device_name(0) if settings.device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
        "xformers": xformers_version, "python": platform.python_version(),
        "cuda": torch.version.cuda if settings.device == "cuda" else None,
    }
    report = Report(settings, environment)
    outputs = [p for p in (args.json, Path(os.environ["OUT"]) / "bench_sd15_gpu.json" if os.environ.get("OUT") else None) if p]
    budget = Budget(settings.budget_s)

    def save() -> None:
        for dtype in sorted({r.dtype for r in report.runs}, key=settings.dtypes.index):
            report.summary[dtype] = summarize(report, dtype)
            report.goals[dtype] = goals(report.summary[dtype])
        data = report.as_dict()
        for path in outputs:
            write_json(path, data)

    def step(name: str, estimate_s: float, fn) -> bool:
        """Run one measurement if it fits the budget; record a skip or an error, never raise."""
        if not budget.fits(estimate_s):
            report.skipped.append({"step": name, "estimate_s": round(estimate_s, 1),
                                   "elapsed_s": round(budget.elapsed(), 1), "reason": "budget"})
            print(f"[skip] {name}: ~{estimate_s:.0f}s would pass the {settings.budget_s:.0f}s budget", flush=True)
            save()
            return False
        try:
            fn()
            ok = True
        except Exception as e:  # one failing configuration (OOM, a compile error) must not lose the rest
            report.errors.append({"step": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"})
            print(f"[error] {name}: {report.errors[-1]['error']}", flush=True)
            free_memory(settings.device)
            ok = False
        save()
        return ok

    print(f"bench_sd15_gpu: {environment['device_name']}, torch {torch.__version__}, "
          f"{settings.size}x{settings.size}, {settings.steps} steps, budget {settings.budget_s:.0f}s", flush=True)
    step("matmul", 10, lambda: report.matmul.update(matmul_throughput(settings)))
    print(f"matmul: {report.matmul}", flush=True)

    def add_run(run: Run) -> Run:
        flops = report.flops.get("per_image_tower_mode" if run.mode == "tower" else "per_image")
        if flops:
            run.achieved_tflops = sig(run.images_per_s * flops / 1e12)
            if report.matmul.get("tflops"):
                run.fraction_of_matmul = sig(run.achieved_tflops / report.matmul["tflops"])
        report.runs.append(run)
        print(f"  {run.dtype:9s} {run.label:48s} {run.images_per_s:8.3f} img/s  "
              f"{run.s_per_image:7.4f} s/img  peak {run.peak_gib} GiB", flush=True)
        return run

    chosen: dict = {}  # the first dtype's best attention/layout and batch, reused by the others
    threads = torch.get_num_threads()
    if settings.device == "cpu":
        # Tiny ops gain nothing from threads and lose 10x to contention on a shared CPU.
        torch.set_num_threads(1)
    try:
        for dtype_name in settings.dtypes:
            bench_dtype(settings, report, budget, step, add_run, dtype_name, chosen)
            torch._dynamo.reset()
            free_memory(settings.device)
    finally:
        torch.set_num_threads(threads)
    report.complete = not report.skipped and not report.errors
    save()
    print_summary(report)
    return report.as_dict()


def bench_dtype(settings: Settings, report: Report, budget: Budget, step, add_run, dtype_name: str,
                chosen: dict) -> None:
    """Every configuration of one dtype, in priority order; `step` skips what the budget can't fit.

    The first dtype picks the attention/layout and the batch size; later dtypes reuse them
    (sweeping again would spend the budget on the same question twice).
    """
    from neobabel.backbones import set_attention_backend
    from neobabel.pipeline import BabelPipeline

    dtype = DTYPES[dtype_name]
    state: dict = {}

    def build():
        state["pipe"] = build_native(settings, dtype)
        state["tower"] = build_tower(settings, dtype, state["pipe"].unet.config.cross_attention_dim)
        # Both wrappers exist before any compile: constructing one later resets the attention
        # processors, which would force a recompile.
        state["ours"] = BabelPipeline(state["pipe"], None, family="sd", name="sd15-random", revision="0",
                                      device=settings.device)
        state["ours_tower"] = BabelPipeline(state["pipe"], state["tower"], family="sd", name="sd15-random-tower",
                                            revision="0", device=settings.device)
        # GPU kernels are not made batch-invariant (a no-op there); on the CPU dry run the
        # invariant op set would time CPU-only code and break torch.compile's tracing.
        for babel in (state["ours"], state["ours_tower"]):
            babel.set_batch_invariant(False)

    if not step(f"{dtype_name}: build", 5 if settings.tiny else 60, build):
        return
    pipe, ours, ours_tower, tower = state["pipe"], state["ours"], state["ours_tower"], state["tower"]
    if not report.flops:
        step("flops", 10, lambda: report.flops.update(count_flops(settings, pipe, tower)))
        print(f"flops per image: {report.flops.get('per_image_tflop')} TFLOP counted "
              f"(issue: ~{ISSUE_TFLOP_PER_IMAGE})", flush=True)
    # The tower waits on the CPU until its own step, so the peak memory of bare and native runs
    # holds the native pipeline's weights only, as a diffusers user's would.
    tower.to("cpu")

    # Seconds per image by batch (eager runs), for the budget's estimates; per-image time falls
    # with batch size, so the nearest smaller measured batch gives a safe estimate.
    per_image: dict[int, float] = {}

    def estimate(batch: int, calls: int | None = None) -> float:
        known = [b for b in per_image if b <= batch]
        s = per_image[max(known)] if known else (0.5 if settings.tiny else 3.0)
        return (calls or settings.reps + 1) * batch * s

    def measure(pipeline: str, attention: str, channels_last: bool, compiled: bool, batch: int, fn,
                warm: bool = True) -> Run:
        median, times, peak = timed(settings, fn, batch, warm=warm)
        run = add_run(Run(dtype_name, pipeline, "native", attention, channels_last, compiled, batch,
                          images_per_s=round(batch / median, 4), s_per_image=round(median / batch, 5),
                          peak_gib=peak, times_s=times))
        if not compiled:
            per_image[batch] = max(per_image.get(batch, 0.0), run.s_per_image)
        return run

    def apply(attention: str, channels_last: bool) -> None:
        ours.attention = ours_tower.attention = set_attention_backend(pipe, attention, settings.device)
        set_layout(pipe, channels_last)

    # 1. bare diffusers defaults, batch 1
    bare: dict[int, Run] = {}
    step(f"{dtype_name}: bare b1", estimate(1),
         lambda: bare.update({1: measure("bare", "sdpa", False, False, 1, bare_call(settings, pipe, 1))}))
    # 2. ours at batch 1: attention x layout (later dtypes: the first dtype's choice only)
    options = ([(chosen["attention"], chosen["channels_last"])] if chosen else attention_options(settings))
    eager: list[Run] = []
    for attention, channels_last in options:
        def ours_b1(a=attention, c=channels_last):
            apply(a, c)
            eager.append(measure("ours", a, c, False, 1, ours_call(settings, ours, 1)))
        step(f"{dtype_name}: ours {attention}{'+channels_last' if channels_last else ''} b1", estimate(1), ours_b1)
    if not eager:
        return
    best_b1 = max(eager, key=lambda r: r.images_per_s)
    attention, channels_last = best_b1.attention, best_b1.channels_last
    apply(attention, channels_last)
    # 3. batch sweep with that attention/layout (later dtypes: the first dtype's best batch only)
    batches = [chosen["batch"]] if chosen else settings.batches
    sweep = [best_b1]
    for batch in batches:
        if batch == 1:
            continue
        if not step(f"{dtype_name}: ours sweep b{batch}", estimate(batch),
                    lambda b=batch: sweep.append(measure("ours", attention, channels_last, False, b,
                                                         ours_call(settings, ours, b)))):
            break  # a larger batch takes longer still (or runs out of memory too)
    best_batch = max(sweep, key=lambda r: r.images_per_s).batch
    if not chosen:
        chosen.update(attention=attention, channels_last=channels_last, batch=best_batch)

    # 4. bare diffusers at the best batch, with its own defaults (SDPA, contiguous)
    def bare_at_best():
        apply("sdpa", False)
        try:
            bare[best_batch] = measure("bare", "sdpa", False, False, best_batch, bare_call(settings, pipe, best_batch))
        finally:
            apply(attention, channels_last)

    if best_batch != 1:
        step(f"{dtype_name}: bare b{best_batch}", estimate(best_batch), bare_at_best)

    # 5. torch.compile of the UNet at the best batch; compile time apart from steady state
    compiled: list[Run] = []

    def compile_and_measure():
        if settings.compile_scope == "regional":  # diffusers: only the repeated transformer blocks
            pipe.unet.compile_repeated_blocks(mode=settings.compile_mode, backend=settings.compile_backend)
        else:
            pipe.unet.compile(mode=settings.compile_mode, backend=settings.compile_backend)
        fn = ours_call(settings, ours, best_batch)
        try:
            t0 = time.perf_counter()
            fn()  # compiles: dynamo traces, inductor generates kernels
            synchronize(settings.device)
            first = time.perf_counter() - t0
            fn()  # any late recompile (e.g. a guard on the last step) lands here, not in the timing
        except Exception:
            for module in pipe.unet.modules():  # back to eager (undo nn.Module.compile), for the tower step
                module._compiled_call_impl = None
            raise
        run = measure("ours", attention, channels_last, True, best_batch, fn, warm=False)
        steady = run.s_per_image * best_batch
        report.compile[dtype_name] = {"mode": settings.compile_mode, "backend": settings.compile_backend,
                                      "scope": settings.compile_scope,
                                      "batch": best_batch, "first_call_s": round(first, 2),
                                      "steady_call_s": round(steady, 4), "compile_s": round(first - steady, 2)}
        compiled.append(run)
        print(f"  compile: {report.compile[dtype_name]}", flush=True)

    earlier = next(iter(report.compile.values()), {}).get("compile_s")
    compile_estimate = 1.2 * earlier if earlier else settings.compile_estimate_s
    step(f"{dtype_name}: compile b{best_batch}", compile_estimate + estimate(best_batch, settings.reps + 1),
         compile_and_measure)

    # 6. tower overhead: the same UNet (compiled when that worked), native and tower interleaved
    pair_reps = settings.pair_reps

    def tower_overhead():
        tower.to(settings.device)
        native_fn, tower_fn = ours_call(settings, ours, best_batch), ours_call(settings, ours_tower, best_batch)
        tower_fn()  # warm-up: the tower's first call
        native_fn()
        native_times: list[float] = []
        tower_times: list[float] = []
        for _ in range(pair_reps):  # interleaved, so drifts (clocks, heat) hit both alike
            for fn, times in ((native_fn, native_times), (tower_fn, tower_times)):
                t0 = time.perf_counter()
                fn()
                synchronize(settings.device)
                times.append(time.perf_counter() - t0)
        n_med, t_med = statistics.median(native_times), statistics.median(tower_times)
        for mode, med, times in (("native", n_med, native_times), ("tower", t_med, tower_times)):
            add_run(Run(dtype_name, "ours", mode, attention, channels_last, bool(compiled), best_batch,
                        images_per_s=round(best_batch / med, 4), s_per_image=round(med / best_batch, 5),
                        peak_gib=None, times_s=[round(t, 4) for t in times], paired=True))
        enc = encoder_times(settings, pipe, tower, best_batch)
        report.tower[dtype_name] = {
            "batch": best_batch, "compiled_unet": bool(compiled), "reps": pair_reps,
            "encoder": "XLM-R base architecture (random) + MLP adapter" if not settings.tiny else "tiny XLM-R",
            "native_s_per_image": round(n_med / best_batch, 5), "tower_s_per_image": round(t_med / best_batch, 5),
            "overhead_pct": round(100 * (t_med - n_med) / n_med, 3),
            **enc,
            "encoder_overhead_pct": round(100 * (enc["tower_encode_s"] - enc["clip_encode_s"]) / n_med, 3),
        }
        print(f"  tower: {report.tower[dtype_name]}", flush=True)

    step(f"{dtype_name}: tower overhead b{best_batch}", estimate(best_batch, 2 * (pair_reps + 1)), tower_overhead)


@torch.no_grad()
def encoder_times(settings: Settings, pipe, tower, batch: int) -> dict:
    """Seconds for the text encoding of one call (prompt + negative prompt): CLIP vs the tower."""
    texts = [PROMPT] * batch

    def clip():
        pipe.encode_prompt(texts, settings.device, 1, True, [""] * batch)

    def tower_encode():
        tower.encode(texts)
        tower.encode([""] * batch)

    out = {}
    for name, fn in (("clip_encode_s", clip), ("tower_encode_s", tower_encode)):
        fn()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            synchronize(settings.device)
            times.append(time.perf_counter() - t0)
        out[name] = round(statistics.median(times), 5)
    return out


def summarize(report: Report, dtype: str) -> dict:
    """Headline numbers of one dtype from whatever runs exist (a budget-cut run too)."""
    runs = [r for r in report.runs if r.dtype == dtype]
    bare = {r.batch: r for r in runs if r.pipeline == "bare"}
    ours = [r for r in runs if r.pipeline == "ours" and r.mode == "native" and not r.paired]
    eager = [r for r in ours if not r.compiled]
    best = max(ours, key=lambda r: r.images_per_s, default=None)
    bare1 = bare.get(1)
    same_batch_bare = bare.get(best.batch) if best else None
    # The wrapper alone at diffusers' own settings (SDPA, contiguous, batch 1).
    plain = next((r for r in eager if r.batch == 1 and r.attention == "sdpa" and not r.channels_last), None)

    def ratio(a, b, digits=3):
        return round(a / b, digits) if a is not None and b else None

    peak_ours = best.peak_gib if best else None
    peak_bare = same_batch_bare.peak_gib if same_batch_bare else None
    memory_basis = f"b{best.batch}" if best and peak_ours is not None and peak_bare else None
    if memory_basis is None and plain and plain.peak_gib is not None and bare1 and bare1.peak_gib:
        peak_ours, peak_bare, memory_basis = plain.peak_gib, bare1.peak_gib, "b1 (no bare run at the best batch)"
    return {
        "bare_b1_images_per_s": bare1.images_per_s if bare1 else None,
        "best": best.label if best else None,
        "best_images_per_s": best.images_per_s if best else None,
        "best_batch": max(eager, key=lambda r: r.images_per_s).batch if eager else None,
        "speedup_vs_bare": ratio(best.images_per_s if best else None, bare1.images_per_s if bare1 else None),
        "speedup_vs_bare_same_batch": ratio(best.images_per_s if best else None,
                                            same_batch_bare.images_per_s if same_batch_bare else None),
        "wrapper_ratio_b1": ratio(plain.images_per_s if plain else None, bare1.images_per_s if bare1 else None),
        "achieved_tflops": best.achieved_tflops if best else None,
        "fraction_of_matmul": best.fraction_of_matmul if best else None,
        "tower_overhead_pct": report.tower.get(dtype, {}).get("overhead_pct"),
        "peak_gib_ours": peak_ours,
        "peak_gib_bare": peak_bare,
        "memory_basis": memory_basis,
        "memory_ratio": ratio(peak_ours, peak_bare),
    }


def goals(summary: dict) -> list[dict]:
    def goal(name, target, value, passed):
        return {"name": name, "target": target, "value": value, "pass": bool(passed) if value is not None else None}

    speed, frac = summary["speedup_vs_bare"], summary["fraction_of_matmul"]
    tower, memory = summary["tower_overhead_pct"], summary["memory_ratio"]
    return [
        goal("speedup_vs_bare_diffusers", f">= {GOAL_SPEEDUP}x", speed, speed is not None and speed >= GOAL_SPEEDUP),
        goal("fraction_of_bf16_matmul", f">= {GOAL_MATMUL_FRACTION:.0%}", frac,
             frac is not None and frac >= GOAL_MATMUL_FRACTION),
        goal("tower_overhead_pct", f"<= {GOAL_TOWER_OVERHEAD_PCT}%", tower,
             tower is not None and tower <= GOAL_TOWER_OVERHEAD_PCT),
        goal("peak_memory_vs_diffusers", "<= 1.0x", memory, memory is not None and memory <= 1.0),
    ]


def print_summary(report: Report) -> None:
    print("\n== summary ==")
    print(f"matmul: {report.matmul.get('tflops')} TFLOP/s ({report.matmul.get('dtype')}); "
          f"FLOPs per image: {report.flops.get('per_image_tflop')} TFLOP counted, ~{ISSUE_TFLOP_PER_IMAGE} in the issue")
    for dtype, summary in report.summary.items():
        print(f"[{dtype}] {json.dumps(summary)}")
        for g in report.goals.get(dtype, []):
            verdict = {True: "PASS", False: "FAIL", None: "not measured"}[g["pass"]]
            print(f"  {verdict:12s} {g['name']}: {g['value']} (goal {g['target']})")
    for s in report.skipped:
        print(f"skipped (budget): {s['step']}")
    for e in report.errors:
        print(f"error: {e['step']}: {e['error']}")


if __name__ == "__main__":
    main()
