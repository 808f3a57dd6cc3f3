"""``mambaspike bench lif``: forward+backward of a multi-step LIF layer, fused kernel vs reference loop.

Every implementation runs the same neurons on the same input ``x [T, *shape]`` (float32, CPU) and
backpropagates the same random spike gradient: a PLIF population (learnable ``beta``), subtractive
(soft) reset, undecayed input (``h = beta*v + x``, snnTorch's ``Leaky``), arctan surrogate with
``alpha = 2``, ``tau = 30 ms`` at ``dt = 1 ms``. Rows (one per T and implementation):

- ``lif``: ``reference_s`` is our reference loop (:func:`~mambaspike.neurons.lif_multistep`),
  ``fast_s`` the fused kernel (``backend``); ``spikes_equal`` and ``grad_rel_err`` (the largest
  relative difference of the input, initial-state, ``beta`` and threshold gradients) compare them;
  ``fast_gb_s`` is the kernel's memory traffic (5 passes over ``[T, N]``: read x, write spikes;
  read x, read the spike gradient, write the input gradient) per second and ``copy_gb_s`` what
  ``Tensor.copy_`` reaches on the same machine (bytes read + written per second).
- ``alif``: the same for the adaptive-threshold LIF (:class:`~mambaspike.neurons.ALIF`, ``adapt = 0.2``,
  ``tau_adapt = 200 ms``, learnable ``beta`` and ``rho``): its reference loop against its fused kernel.
- ``snntorch``: snnTorch's ``Leaky(reset_mechanism="subtract", reset_delay=False, learn_beta=True)``
  stepped over ``x.unbind(0)``, its time in ``fast_s``; ``reference_s`` repeats our reference loop,
  ``fused_speedup`` is snnTorch's time over the fused kernel's.
- ``spikingjelly``: spikingjelly's ``ParametricLIFNode(decay_input=False, v_reset=None,
  step_mode="m")`` (its own multi-step CPU path), likewise.

Peak memory is the process's peak resident set during one forward+backward above what was resident
before (the input and the spike gradient are allocated before; the input gradient is counted). Times are
medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import gc
import sys

import torch

from mambaspike.bench import peak_memory_mb, time_it

DESCRIPTION = "LIF forward+backward: fused kernel vs reference loop (and snnTorch, spikingjelly when installed)"

TAU_MS, DT_MS, V_THRESHOLD, ALPHA = 30.0, 1.0, 1.0, 2.0


def _int_list(s: str) -> list[int]:
    try:
        vals = [int(v) for v in s.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {s!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {s!r}")
    return vals


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--T", type=_int_list, default=[16, 100, 300], metavar="T1,T2,...", help="sequence lengths")
    p.add_argument(
        "--shape", type=_int_list, default=[16, 64, 32, 32], metavar="B,C,H,W", help="shape of one time step"
    )
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    p.add_argument("--backend", default="auto", choices=["auto", "numba", "cpu"], help="fused LIF backend")
    p.add_argument("--no-others", action="store_true", help="skip the snnTorch and spikingjelly rows")


def copy_bandwidth_gb_s(numel: int = 1 << 26, repeats: int = 5) -> float:
    """Bytes read + written per second by ``Tensor.copy_`` between two float32 tensors of ``numel``
    (256 MiB each, in huge pages like the fused kernel's outputs; the best of ``repeats``)."""
    from mambaspike.kernels.views import empty_like_numpy

    a = empty_like_numpy((numel,), torch.float32).fill_(1.0)
    b = empty_like_numpy((numel,), torch.float32)
    b.copy_(a)  # fault the pages in
    best = min(time_it(lambda: b.copy_(a), repeats=1, warmup=0) for _ in range(repeats))
    return 2 * numel * 4 / best / 1e9


# the neurons every row times (ALIF adds its adaptation)
_NEURON = dict(
    tau=TAU_MS,
    dt=DT_MS,
    v_threshold=V_THRESHOLD,
    soft_reset=True,
    decay_input=False,
    learn_tau=True,
    surrogate="atan",
    alpha=ALPHA,
)


def _lif(backend: str):
    from mambaspike.neurons.modules import LIF

    return LIF(**_NEURON, backend=backend)


def _alif(backend: str):
    from mambaspike.neurons.modules import ALIF

    return ALIF(**_NEURON, tau_adapt=200.0, adapt=0.2, backend=backend)


class _Case:
    """One implementation: ``run()`` does forward+backward; ``result()`` its spikes and gradients."""

    def __init__(self, forward, params, x, gs):
        self.forward, self.params, self.x, self.gs = forward, params, x, gs
        self.spikes = None

    def clear(self):
        self.x.grad = None
        for p in self.params:
            p.grad = None

    def run(self, keep: bool = False):
        self.clear()  # as training does with zero_grad(set_to_none=True)
        s = self.forward(self.x)
        s.backward(self.gs)
        if keep:
            self.spikes = s.detach()
        del s

    def grads(self) -> list[torch.Tensor]:
        return [self.x.grad] + [p.grad for p in self.params]


def _ours(backend: str, x, gs) -> _Case:
    m = _lif(backend)
    return _Case(lambda x: m(x)[0], [m.w], x, gs)


def _ours_alif(backend: str, x, gs) -> _Case:
    m = _alif(backend)
    return _Case(lambda x: m(x)[0], [m.w, m.w_adapt], x, gs)


def _snntorch(x, gs) -> _Case | None:
    try:
        import snntorch
        from snntorch import surrogate
    except ImportError:
        return None
    beta = float(_lif("reference").beta.detach())
    leaky = snntorch.Leaky(
        beta=beta,
        threshold=V_THRESHOLD,
        spike_grad=surrogate.atan(alpha=ALPHA),
        learn_beta=True,
        reset_mechanism="subtract",
        reset_delay=False,
    )

    def forward(x):
        mem = torch.zeros_like(x[0])
        out = []
        for xt in x.unbind(0):
            spk, mem = leaky(xt, mem)
            out.append(spk)
        return torch.stack(out)

    return _Case(forward, [leaky.beta], x, gs)


def _spikingjelly(x, gs) -> _Case | None:
    try:
        from spikingjelly.activation_based import functional, neuron, surrogate
    except Exception:  # ImportError, or a missing dependency of spikingjelly itself
        return None
    beta = float(_lif("reference").beta.detach())
    node = neuron.ParametricLIFNode(
        init_tau=1 / (1 - beta),
        decay_input=False,
        v_threshold=V_THRESHOLD,
        v_reset=None,
        surrogate_function=surrogate.ATan(alpha=ALPHA),
        step_mode="m",
    )

    def forward(x):
        functional.reset_net(node)
        return node(x)

    return _Case(forward, [node.w], x, gs)


def _max_rel_err(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    err = 0.0
    for u, v in zip(a, b):
        scale = float(v.abs().max()) or 1.0
        err = max(err, float((u - v).abs().max()) / scale)
    return err


def _measure(case: _Case, repeats: int) -> tuple[float, float | None]:
    case.clear()
    gc.collect()
    peak = peak_memory_mb(case.run)
    gc.collect()
    t = time_it(case.run, repeats=repeats, warmup=1)
    return t, peak


def _against_reference(ref: _Case, fast: _Case, repeats: int):
    """Time and peak memory of a fused case and its reference loop, then the correctness of the measured
    runs (identical spikes, gradients within float32 rounding): ``(fast_s, fast_peak_mb, reference_s,
    reference_peak_mb, spikes_equal, grad_rel_err, reference spikes as bool)``."""
    fast.run()  # compile (cached on disk after the first process)
    t_fast, peak_fast = _measure(fast, repeats)
    t_ref, peak_ref = _measure(ref, repeats)
    ref.run(keep=True)
    g_ref = [t.clone() for t in ref.grads()]
    fast.run(keep=True)
    equal = bool(torch.equal(ref.spikes, fast.spikes))
    rel = _max_rel_err(fast.grads(), g_ref)
    s_ref = ref.spikes.bool()
    ref.spikes = fast.spikes = None
    return t_fast, peak_fast, t_ref, peak_ref, equal, rel, s_ref


def run(args):
    shape = tuple(args.shape)
    torch.manual_seed(0)
    copy_bw = copy_bandwidth_gb_s()
    for T in args.T:
        g = torch.Generator().manual_seed(T)
        x = (torch.randn((T, *shape), generator=g) * 0.6 + 0.1).requires_grad_()
        gs = torch.randn((T, *shape), generator=g)
        numel = x.numel()

        pair = _against_reference(_ours("reference", x, gs), _ours(args.backend, x, gs), args.repeats)
        t_fast, peak_fast, t_ref, peak_ref, equal, rel, s_ref = pair
        traffic = 5 * numel * x.element_size()
        print(
            f"lif T={T}: the fused forward+backward moves {traffic / 1e9:.2f} GB (5 passes over [T, N]) in "
            f"{t_fast:.3f} s = {traffic / t_fast / 1e9:.1f} GB/s; Tensor.copy_ reaches {copy_bw:.1f} GB/s "
            f"on this machine ({traffic / t_fast / 1e9 / copy_bw:.0%})",
            file=sys.stderr,
            flush=True,
        )
        yield {
            "name": "lif",
            "T": T,
            "shape": list(shape),
            "backend": args.backend,
            "reference_s": t_ref,
            "fast_s": t_fast,
            "speedup": t_ref / t_fast,
            "reference_peak_mb": peak_ref,
            "fast_peak_mb": peak_fast,
            "spikes_equal": equal,
            "grad_rel_err": rel,
            "fast_gb_s": traffic / t_fast / 1e9,
            "copy_gb_s": copy_bw,
        }
        pair = _against_reference(_ours_alif("reference", x, gs), _ours_alif(args.backend, x, gs), args.repeats)
        t_fast_a, peak_fast_a, t_ref_a, peak_ref_a, equal_a, rel_a, _ = pair
        yield {
            "name": "alif",
            "T": T,
            "shape": list(shape),
            "backend": args.backend,
            "reference_s": t_ref_a,
            "fast_s": t_fast_a,
            "speedup": t_ref_a / t_fast_a,
            "reference_peak_mb": peak_ref_a,
            "fast_peak_mb": peak_fast_a,
            "spikes_equal": equal_a,
            "grad_rel_err": rel_a,
        }
        if not args.no_others:
            for name, make in (("snntorch", _snntorch), ("spikingjelly", _spikingjelly)):
                other = make(x, gs)
                if other is None:
                    continue
                t_o, peak_o = _measure(other, args.repeats)
                other.run(keep=True)
                agree = float((other.spikes.bool() == s_ref).float().mean())
                other.spikes = None
                yield {
                    "name": name,
                    "T": T,
                    "shape": list(shape),
                    "reference_s": t_ref,
                    "fast_s": t_o,
                    "speedup": t_ref / t_o,
                    "reference_peak_mb": peak_ref,
                    "fast_peak_mb": peak_o,
                    "spike_agreement": agree,
                    "fused_speedup": t_o / t_fast,
                }
                del other
        del pair, x, gs, s_ref
        gc.collect()
