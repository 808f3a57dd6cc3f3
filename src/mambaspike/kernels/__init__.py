"""Every compiled kernel (numba, Triton) and the one registry that loads them."""
