"""Batch-invariant CPU inference: a sample's result never depends on the batch it runs in.

Found by comparing every module's output for a sample alone and inside shuffled batches,
under `ATEN_CPU_CAPABILITY=avx2`, `avx512` and `default`, with 1 and 2 threads. Four kernel
behaviours made a row depend on its batch; each is neutralised here, at that depth:

1. **Vectorised transcendental element-wise ops** (sigmoid, SiLU, GELU, exp, sin, cos, tanh,
   erf, ...). ATen runs one flat loop over the whole tensor: SIMD (SLEEF polynomials) for full
   vector chunks, the scalar libm function for the last `numel % (2 * lanes)` elements. The two
   disagree in the last bit, so an element's value depends on whether it lands in the tail of
   the *batch's* flattened tensor: on its sample's position and the batch size. This is what
   broke native mode on AVX2 (CLIP's QuickGELU = x * sigmoid(1.702 x) in the text encoder,
   which runs on the whole prompt batch); it also hits SiLU in every ResNet block and the
   sin/cos timestep embedding. With `ATEN_CPU_CAPABILITY=default` the "vector" is emulated by
   the same scalar function, which is why that setting passed.
   Fix: these ops run once per leading-dimension slice, so each sample's call is exactly the
   call it would get alone (same shape, values and tail). Except where no tail exists: when a
   contiguous sample's element count is a multiple of 64 x lcm(1..threads), every thread's
   chunk of the batched call and of the call alone starts on a 64-element boundary and ends on
   one, so every element takes the SIMD path in both and the batched call is already exact
   (64 covers two AVX-512 vectors of bf16; each thread gets ceil(numel / threads) elements).
   That holds for most of a UNet's activations and saves the per-sample calls there.
2. **Convolution paths chosen by batch size.** A batch of one takes ATen's native
   convolution, any larger batch oneDNN, and the two sum in different orders (this is what made
   "every sample differ" from its batch-of-one call). Measured here: oneDNN gives bit-identical
   rows for every batch from 2 to 34, at every position, for the world, tiny-fixture and SD 1.5
   layer shapes, on AVX-512, AVX2 and scalar kernels, 1 and 2 threads. So a batch of one is run
   as a batch of two (the sample twice) and its first row kept. NNPACK, which ATen may pick
   from batch 16 on, is switched off.
3. **Layout chosen by batch size.** diffusers' VAE attention transposes (B, C, HW) to
   (B, HW, C); for B == 1 that folds into a transposed GEMM operand, for B > 1 into a copy (two
   GEMM paths), and its output comes back channels-last only for B > 1 (a size-1 batch is both
   layouts), where GroupNorm and convolution run other algorithms. Their inputs are made
   contiguous, one layout for every B.
4. **Small-M GEMMs.** A linear layer with few rows per sample (timestep and pooled-text
   embeddings, attention pooling's class token: M = batch) gets a GEMM whose M is the batch
   size, and BLAS picks its small-M kernels (GEMV for M = 1) by M. Those run per sample.

Everything else the pipelines run was checked row-invariant: matmul/linear with >= 16 rows
per sample, SDPA (per batch and head), GroupNorm/LayerNorm/softmax (per sample or row), and
exact IEEE element-wise arithmetic (add, mul, div, sqrt), which gives the same bits in SIMD and
scalar code. The invariance tests (tests/test_invariance.py) hold this to account on every CPU
CI runs on; `.ci/run` repeats them under AVX2.

GPU kernels (cuBLAS/cuDNN heuristics, fused attention) make no such promise; on CUDA this
mode is not applied and run.json records `batch_invariant: false`.
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

# Element-wise ops whose SIMD and scalar implementations round differently (torch 2.13 CPU).
_TRANSCENDENTAL = {
    torch.sigmoid, torch.Tensor.sigmoid, torch.exp, torch.Tensor.exp, torch.sin, torch.Tensor.sin,
    torch.cos, torch.Tensor.cos, torch.tanh, torch.Tensor.tanh, torch.erf, torch.Tensor.erf,
    torch.log, torch.Tensor.log, torch.expm1, torch.Tensor.expm1, torch.log1p, torch.Tensor.log1p,
    torch.pow, torch.Tensor.pow, torch.Tensor.__pow__, torch.Tensor.__rpow__,
    F.silu, F.gelu, F.mish, F.softplus, F.elu, F.tanh, F.sigmoid,
}
_IN_PLACE = {torch.Tensor.sigmoid_, torch.Tensor.exp_, torch.Tensor.tanh_, torch.Tensor.sin_,
             torch.Tensor.cos_, torch.Tensor.erf_, torch.Tensor.pow_}
# pow with these exponents is exact arithmetic (square, sqrt, reciprocal ...): no tail effect.
_EXACT_EXPONENTS = {1, 2, 3, -1, -2, 0.5, -0.5}
# Kernels that pick their algorithm by the input's memory layout (item 3 of the docstring).
_LAYOUT_SENSITIVE = {F.linear, F.group_norm, F.layer_norm, F.conv1d, F.conv2d, F.conv3d}
_CONV_DIMS = {F.conv1d: 3, F.conv2d: 4, F.conv3d: 5}  # batched input ranks
_CONVOLUTIONS = set(_CONV_DIMS)
_MIN_GEMM_ROWS = 16  # rows per sample from which a linear layer runs batched (item 4)


def _per_slice(func, x: torch.Tensor, args, kwargs):
    if kwargs.get("inplace") or func in _IN_PLACE:
        for i in range(x.shape[0]):
            func(x[i : i + 1], *args, **kwargs)
        return x
    return torch.cat([func(x[i : i + 1], *args, **kwargs) for i in range(x.shape[0])])


@functools.lru_cache(maxsize=None)
def _tail_free_block(threads: int) -> int:
    """Per-sample element count at which no chunk of any thread count <= `threads` has a tail."""
    return 64 * math.lcm(*range(1, threads + 1))


def _tail_free(x: torch.Tensor, args) -> bool:
    """True when the batched element-wise call has no scalar tail anywhere (docstring, item 1)."""
    if not x.is_contiguous() or any(isinstance(a, torch.Tensor) for a in args):
        return False
    return (x.numel() // x.shape[0]) % _tail_free_block(torch.get_num_threads()) == 0


def _exact_pow(func, args) -> bool:
    return func in (torch.pow, torch.Tensor.pow, torch.Tensor.__pow__) and len(args) > 1 \
        and isinstance(args[1], (int, float)) and args[1] in _EXACT_EXPONENTS


class BatchInvariantOps(TorchFunctionMode):
    """Route the batch-sensitive CPU ops through batch-independent calls (module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.device.type != "cpu" or x.dim() == 0:
            return func(*args, **kwargs)
        if func in _LAYOUT_SENSITIVE and not x.is_contiguous():
            x = x.contiguous()
            args = (x, *args[1:])
        if func in _CONVOLUTIONS:
            if x.shape[0] == 1 and x.dim() == _CONV_DIMS[func]:  # the batch-of-one path is another algorithm: run it as two
                return func(torch.cat([x, x]), *args[1:], **kwargs)[:1]
            return func(*args, **kwargs)
        if x.shape[0] > 1:
            if (func in _TRANSCENDENTAL and not _exact_pow(func, args)) or func in _IN_PLACE:
                if _tail_free(x, args[1:]):
                    return func(*args, **kwargs)
                return _per_slice(func, x, args[1:], kwargs)
            if func is F.linear and x.numel() // (x.shape[0] * x.shape[-1]) < _MIN_GEMM_ROWS:
                return _per_slice(func, x, args[1:], kwargs)
        return func(*args, **kwargs)


@contextlib.contextmanager
def batch_invariant(device: torch.device | str = "cpu", enabled: bool = True):
    """Run the enclosed inference batch-invariantly on CPU; a no-op elsewhere or if disabled."""
    if not enabled or torch.device(device).type != "cpu":
        yield False
        return
    with torch.backends.nnpack.flags(enabled=False), BatchInvariantOps():
        yield True
