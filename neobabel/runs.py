"""Run directories: content keys, atomic writes, PNG metadata, parquet manifests, resume.

<run>/run.json             spec as run, package versions, status, invocations
<run>/images/<key>.png     PNG with text chunks: prompt, lang, seed, model, params, key, parameters
<run>/generations.parquet  one row per image

A PNG is written to a temporary name and renamed, so it is either complete or absent. The
PNG is the source of truth: its text chunks carry everything in its manifest row, so a run
killed between writing images and rewriting the manifest recovers those rows on resume
instead of regenerating the images: a lost or unreadable manifest is rebuilt from every PNG.
PNG bytes are a function of the spec and the unit alone (no timing in them), so two runs of
one spec give byte-identical images and the manifest's sha256 verifies one run against another.

The parts, bottom to top (each imports only those above it in this list):

- ``neobabel.atomicfiles``  atomic writes; temporaries of dead processes cleaned up
- ``neobabel.rundir``       WorkUnit, content keys, manifest schema, paths confined to the run, RunDir
- ``neobabel.pngmeta``      PNG text chunks (ours, and the ``parameters`` text other SD tools read)
- ``neobabel.runspec``      one spec per run directory (RunSpecMismatch, ``add_to_run``)
- ``neobabel.runlock``      one writer at a time (filelock; stale owners marked ``interrupted``)
- ``neobabel.generation``   plan / resume and the generate loop

Callers import from ``neobabel.runs``, which re-exports every public name of those modules.
"""

from neobabel.atomicfiles import (
    atomic_write_bytes, atomic_write_json, atomic_write_parquet, atomic_write_text, clean_run_temp_files,
    clean_temp_files, pid_alive,
)
from neobabel.generation import MANIFEST_FLUSH_SECONDS, GenerationReport, generate_into_run, plan
from neobabel.pngmeta import png_bytes, png_metadata, read_png_metadata, sd_parameters_text
from neobabel.rundir import (
    GENERATION_SCHEMA, KEY_LENGTH, RUN_FORMAT_VERSION, VERSIONED_PACKAGES, PathOutsideRunError, RunDir, WorkUnit,
    image_key, key_params, now_iso, package_versions, resolve_in_run, units_for,
)
from neobabel.runlock import LOCK_NAME, LOCK_OWNER_NAME, RunDirInUse, lock_owner, locked
from neobabel.runspec import (
    RunSpecMismatch, check_run_spec, generation_spec, held_specs, spec_differences,
)

__all__ = [
    "GENERATION_SCHEMA", "KEY_LENGTH", "LOCK_NAME", "LOCK_OWNER_NAME", "MANIFEST_FLUSH_SECONDS",
    "RUN_FORMAT_VERSION", "VERSIONED_PACKAGES",
    "GenerationReport", "PathOutsideRunError", "RunDir", "RunDirInUse", "RunSpecMismatch", "WorkUnit",
    "atomic_write_bytes", "atomic_write_json", "atomic_write_parquet", "atomic_write_text",
    "check_run_spec", "clean_run_temp_files", "clean_temp_files", "generate_into_run", "generation_spec",
    "held_specs", "image_key", "key_params", "lock_owner", "locked", "now_iso", "package_versions",
    "pid_alive", "plan", "png_bytes", "png_metadata", "read_png_metadata", "resolve_in_run",
    "sd_parameters_text", "spec_differences", "units_for",
]
