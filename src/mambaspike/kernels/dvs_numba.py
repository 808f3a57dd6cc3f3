"""Compiled DVS camera over a scene of moving sprites (numba), used by :mod:`mambaspike.data.dvsmotion`.

The scene: log intensity relative to the background, the sum over objects ``o`` of
``a_o[k] * bilinear(image_o, u, v)`` with sprite coordinates ``u = (x + 0.5 - cx_o[k]) / f_o[k] +
(S / 2 - 0.5)`` (``v`` likewise from y), zero outside the ``S x S`` sprite. Per step the kernel visits
only the pixels that can change: the bounding boxes of every object over the last three time steps
(with the refractory period at most one step, a pixel left pending by the refractory period is still
inside them when it fires). The pixel update is :func:`mambaspike.data.dvs.dvs_step`'s, written per
pixel with the same operations in the same order; :func:`mambaspike.data.dvsmotion.simulate_scene_reference`
runs the same scene through ``dvs_step`` on every pixel, and the tests compare the two.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_OPTS = dict(cache=True, nogil=True, boundscheck=False)


@njit(inline="always", **_OPTS)
def _tap(img, i, j):
    s = img.shape[0]
    if 0 <= i < s and 0 <= j < s:
        return img[j, i]
    return 0.0


@njit(inline="always", **_OPTS)
def _sample(img, u, v):
    """Bilinear sample of ``img`` at sprite coordinates (u, v), zero outside."""
    fu_i = math.floor(u)
    fv_i = math.floor(v)
    fu = u - fu_i
    fv = v - fv_i
    iu, iv = int(fu_i), int(fv_i)
    top = (1 - fu) * _tap(img, iu, iv) + fu * _tap(img, iu + 1, iv)
    bot = (1 - fu) * _tap(img, iu, iv + 1) + fu * _tap(img, iu + 1, iv + 1)
    return (1 - fv) * top + fv * bot


@njit(**_OPTS)
def simulate(images, traj, level, ref, c_on, c_off, width, height, step_us, refractory_us, out_pixel, out_t, out_on):
    """Run the pixels over steps ``1..K`` of the scene.

    Args:
        images: float64 ``[O, S, S]`` sprite images.
        traj: float64 ``[O, 4, K + 1]``: per step the centre x, y (px), scale f (px per sprite px)
            and signed log contrast a of each object.
        level: float64 ``[H * W]`` log intensity at step 0 (updated: at step K on return).
        ref: float64 ``[H * W]`` reference levels (updated in place).
        c_on, c_off: float64 ``[H * W]`` thresholds.
        out_pixel, out_t, out_on: event buffers (int64, float64, bool) of one capacity.

    Returns:
        The number of events; where it exceeds the capacity, only the first events were written
        (call again with larger buffers and fresh ``level`` / ``ref``).
    """
    n_obj = images.shape[0]
    n_steps = traj.shape[2] - 1
    s = images.shape[1]
    t_free = np.full(width * height, -np.inf)
    stamp = np.full(width * height, -1, dtype=np.int64)
    cap = out_t.shape[0]
    half = s / 2 - 0.5
    row_v = np.empty(n_obj)
    n = 0
    for k in range(1, n_steps + 1):
        t0 = (k - 1) * step_us
        t1 = t0 + step_us
        for o in range(n_obj):
            x_lo, x_hi, y_lo, y_hi = width, -1, height, -1
            for kk in range(max(k - 2, 0), k + 1):
                r = (s / 2 + 1) * traj[o, 2, kk] + 1
                cx, cy = traj[o, 0, kk], traj[o, 1, kk]
                x_lo = min(x_lo, int(math.floor(cx - r)))
                x_hi = max(x_hi, int(math.ceil(cx + r)))
                y_lo = min(y_lo, int(math.floor(cy - r)))
                y_hi = max(y_hi, int(math.ceil(cy + r)))
            x_lo, y_lo = max(x_lo, 0), max(y_lo, 0)
            x_hi, y_hi = min(x_hi, width - 1), min(y_hi, height - 1)
            for y in range(y_lo, y_hi + 1):
                for q in range(n_obj):
                    row_v[q] = (y + 0.5 - traj[q, 1, k]) / traj[q, 2, k] + half
                for x in range(x_lo, x_hi + 1):
                    p = y * width + x
                    if stamp[p] == k:
                        continue
                    stamp[p] = k
                    # the scene's log intensity: objects whose support misses the pixel add exactly 0
                    l1 = 0.0
                    for q in range(n_obj):
                        v = row_v[q]
                        if -1.0 < v < s:
                            u = (x + 0.5 - traj[q, 0, k]) / traj[q, 2, k] + half
                            if -1.0 < u < s:
                                l1 = l1 + traj[q, 3, k] * _sample(images[q], u, v)
                    l0 = level[p]
                    r0 = ref[p]
                    change = l1 - r0
                    con, coff = c_on[p], c_off[p]
                    if ((change >= con) or (change <= -coff)) and t_free[p] <= t1:
                        on = change > 0
                        c = con if on else coff
                        count = int(math.floor(abs(change) / c))
                        step_sign = c if on else -c
                        slope = l1 - l0
                        t = 0.0
                        for j in range(1, count + 1):
                            crossing = r0 + j * step_sign - l0
                            frac = crossing / slope if slope != 0 else 0.0
                            frac = min(max(frac, 0.0), 1.0)
                            t = max(t0 + frac * step_us, t_free[p])
                            if n < cap:
                                out_pixel[n] = p
                                out_t[n] = t
                                out_on[n] = on
                            n += 1
                        ref[p] = r0 + count * step_sign
                        t_free[p] = t + refractory_us
                    level[p] = l1
    return n


def warm_up() -> None:
    """Compile once for the argument types the data set uses."""
    images = np.zeros((1, 4, 4))
    traj = np.ones((1, 4, 3))
    buf = 8
    simulate(
        images,
        traj,
        np.zeros(16),
        np.zeros(16),
        np.full(16, 0.2),
        np.full(16, 0.2),
        4,
        4,
        1000.0,
        500.0,
        np.zeros(buf, np.int64),
        np.zeros(buf),
        np.zeros(buf, np.bool_),
    )
