"""How much a world model uses its captions (benchmarks/RESULTS.md §6b).

- loss ratio: x0 MSE with shuffled / right captions on 96 training-like samples (sampler seed 777)
  at t = 300, 600, 900 (1.0 = the caption changes nothing);
- shape probe: "a photo of a {shape}" (en) x seeds 500-507 for the 5 world shapes at the model's
  default sampling settings: the share where the exact detector finds the named shape, and the
  mean |pixel difference| between two shape captions at the same seed;
- presentation probe: German direct vs feminine captions of four masculine-stereotyped
  occupations x seeds 600-615: the feminine-coded share of the portraits read as feminine or
  masculine, against the planted share (does the caption's grammatical form steer presentation?).
Runs in fp32; the loss ratio assumes an x0 ("sample") model, as the world models are. Usage: python benchmarks/probe_world_captions.py MODEL [THREADS]
"""
import sys, numpy as np, torch
from neobabel.pipeline import BabelPipeline
from neobabel.world import detect
from neobabel.world.bias import load_table
from neobabel.world.data import WorldSampler
from neobabel.world.spec import SHAPES
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
pipe = BabelPipeline.from_pretrained(sys.argv[1]); pipe.set_batch_invariant(False)
unet, vae, sched = pipe.pipe.unet.float(), pipe.pipe.vae, pipe.pipe.scheduler
pipe.tower.float()
table = load_table()
smp = WorldSampler(table, seed=777)
ims, texts = [], []
for b in range(3):
    i, t, _ = smp.batch(b, 32); ims.append(i); texts += t
x = torch.from_numpy(np.concatenate(ims)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
lat = vae.encode(x)  # the world model's pixel-unshuffle "latents"
g = torch.Generator().manual_seed(0)
noise = torch.randn(lat.shape, generator=g)
perm = torch.randperm(len(texts), generator=g).tolist()
res = {}
with torch.no_grad():
    right, _ = pipe.tower.encode(texts)
    wrong, _ = pipe.tower.encode([texts[j] for j in perm])
    for tt in (300, 600, 900):
        t = torch.full((len(texts),), tt)
        noisy = sched.add_noise(lat, noise, t)
        l_r = torch.nn.functional.mse_loss(unet(noisy, t, encoder_hidden_states=right).sample, lat).item()
        l_w = torch.nn.functional.mse_loss(unet(noisy, t, encoder_hidden_states=wrong).sample, lat).item()
        res[f"t{tt}"] = (round(l_r, 4), round(l_w, 4), round(l_w / l_r, 3))
shapes = list(SHAPES)
seeds = list(range(500, 508))
out = pipe.generate([f"a photo of a {s}" for s in shapes for _ in seeds], "en", [s for _ in shapes for s in seeds], batch_size=20)
arr = np.stack([np.asarray(im, float) for im in out])
arr = arr.reshape(len(shapes), len(seeds), *arr.shape[1:])  # any image size (32 or 64)
hit = np.mean([detect.count_objects(detect.read_image(out[i * len(seeds) + j]), shapes[i]) >= 1 for i in range(len(shapes)) for j in range(len(seeds))])
diffs = [np.abs(arr[a, :] - arr[b, :]).mean() for a in range(len(shapes)) for b in range(a + 1, len(shapes))]
print(sys.argv[1], "loss right/shuffled/ratio", res, "shape hit", round(float(hit), 3), "caption pixel diff", round(float(np.mean(diffs)), 2), flush=True)

occs = ("firefighter", "mechanic", "pilot", "police officer")
pres = {}
for form in ("direct", "feminine"):
    cells = [table.lookup(o, "de", form) for o in occs]
    seeds = list(range(600, 616))
    imgs = pipe.generate([c.prompt for c in cells for _ in seeds], "de", [s for _ in cells for s in seeds], batch_size=32)
    read = [detect.read_image(im).presentation for im in imgs]
    labelled = [r for r in read if r in ("feminine", "masculine")]
    pres[form] = {"feminine_share": round(sum(r == "feminine" for r in labelled) / max(1, len(labelled)), 3),
                  "labelled": len(labelled), "of": len(read),
                  "planted": round(float(np.mean([c.p_feminine for c in cells])), 3)}
print(sys.argv[1], "presentation (de, 4 occupations x 16 seeds)", pres, flush=True)
