import importlib.util
import os

import pytest

# Triton without a GPU runs only in its interpreter, and it reads TRITON_INTERPRET when it is first
# imported -- which torch or the kernel registry may do before the Triton tests' fixture runs. So on a
# machine with triton installed and no CUDA device the whole session runs with TRITON_INTERPRET=1 (it
# changes nothing else: nothing but the Triton tests runs Triton on a CPU).
if importlib.util.find_spec("triton") is not None and "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A data directory holding N-Digits, generated once per test session (never ~/.cache)."""
    from mambaspike.data.ndigits import ensure_ndigits

    root = tmp_path_factory.mktemp("data")
    ensure_ndigits(root)
    return root


@pytest.fixture(scope="module")
def triton_interpreter(request):
    """Triton's CPU interpreter (``TRITON_INTERPRET=1``) for one test module where no GPU is present;
    the variable is set for that module only. Triton reads it when a function is decorated: its own
    (``tl.sum``, ...) when it is first imported, so a test module must not import triton itself
    (skip on ``importlib.util.find_spec("triton")``); the kernel modules that the test module names
    in ``TRITON_KERNELS`` are imported afresh inside and forgotten after. Triton stays imported in
    interpreter mode for the rest of the session (nothing else runs Triton on a CPU)."""
    import sys

    import torch

    from mambaspike import kernels

    names = getattr(request.module, "TRITON_KERNELS", ())

    def forget():
        for name in names:
            sys.modules.pop(kernels.KERNELS[name].module, None)
            kernels.reset(name)

    if torch.cuda.is_available():
        yield "cuda"
        return
    if "triton" in sys.modules:
        from triton.runtime.interpreter import InterpretedFunction

        if not isinstance(sys.modules["triton"].language.standard.sum, InterpretedFunction):
            pytest.skip("triton was imported before TRITON_INTERPRET=1 was set; run this test module alone")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_INTERPRET", "1")
        forget()
        import triton  # noqa: F401  (first imported here, in interpreter mode)

        yield "cpu"
    forget()


@pytest.fixture
def firing():
    """``firing(model) -> model`` with every BatchNorm's affine set (weight 3, bias 1.5) so that each
    block's neurons fire on sparse random input (an untrained front-end is mostly silent)."""
    import torch

    def set_norms(model):
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.data.fill_(3.0)
                m.bias.data.fill_(1.5)
        return model

    return set_norms
