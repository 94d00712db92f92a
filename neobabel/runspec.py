"""One spec per run directory.

A spec (:func:`generation_spec`) is the command, the model's identity and the params that enter
image keys; for audits also the prompt selection. Another spec is refused before anything is
written (:class:`RunSpecMismatch`) unless it is added deliberately (``add_to_run``; then
``run.json`` lists every spec under ``specs``). Adding prompts or seeds to a `neobabel generate`
run is not a spec change: such runs are meant to be extended.
"""

from __future__ import annotations

import json

from neobabel.errors import InputError
from neobabel.rundir import RunDir


class RunSpecMismatch(InputError):
    """The run directory holds another spec than the command asks for."""


def generation_spec(pipeline, params: dict, command: str = "generate", **selection) -> dict:
    """The spec a run directory holds one of: the command, the model's identity, the params that
    enter image keys, whether the batch-invariant kernels made the pixels, and `selection`
    (for audits: the prompt selection). Prompts and seeds of `neobabel generate` are not in
    it: a generate run is meant to be extended with more of them. Returned as run.json reads
    it back (JSON types), so specs compare with ==."""
    identity = pipeline.identity()
    spec = {"command": command, "model": identity["model"], "revision": identity["revision"],
            "mode": identity["mode"], "params": params, "batch_invariant": bool(pipeline.batch_invariant),
            **selection}
    return json.loads(json.dumps(spec, sort_keys=True, ensure_ascii=False, default=str))


def held_specs(info: dict) -> list[dict]:
    """The specs a run.json records (a run.json from before `specs`: its model and params)."""
    if isinstance(info.get("specs"), list):
        return info["specs"]
    model, params = info.get("model"), info.get("params")
    if info.get("audit") or not isinstance(model, dict) or not isinstance(params, dict):
        return []  # nothing to hold the command to (old audits keep their seed-scheme check)
    return [{"command": info.get("command", "generate"), "model": model.get("model"),
             "revision": model.get("revision"), "mode": model.get("mode"), "params": params,
             "batch_invariant": bool(info.get("batch_invariant", True))}]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _show(v) -> str:
    if v is None:
        return "(none)"
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def spec_differences(old: dict, new: dict) -> list[str]:
    """`field: old -> new` for every field that differs (nested fields dotted, e.g. params.steps)."""
    a, b = _flatten(old), _flatten(new)
    return [f"{k}: {_show(a.get(k))} -> {_show(b.get(k))}" for k in sorted(a.keys() | b.keys())
            if a.get(k) != b.get(k)]


def check_run_spec(run: RunDir, spec: dict, *, add_to_run: bool = False) -> list[dict]:
    """Refuse (RunSpecMismatch, writing nothing) a spec the run directory does not hold, unless
    `add_to_run` adds it deliberately. Only `neobabel generate` runs take several specs: an
    audit's tables must hold that audit's rows alone. Returns the specs held so far."""
    held = held_specs(run.read_run_json())
    if not held or spec in held:
        return held
    can_add = spec.get("command") == "generate" and all(s.get("command") == "generate" for s in held)
    if add_to_run and can_add:
        return held
    diffs = "; ".join(spec_differences(held[-1], spec))
    way_out = ("write to a new --out, or pass --add-to-run to add this spec to it deliberately" if can_add
               else "write to a new --out (only `neobabel generate` runs take --add-to-run)")
    raise RunSpecMismatch(f"run directory {run.path} holds another spec ({diffs}); {way_out}")
