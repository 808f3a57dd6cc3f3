"""Streaming inference: one time bin at a time, in memory constant in time.

Every registered model is ``front-end -> interface -> sequence model -> head``; the front-end pools
time by ``temporal_pool`` and the interface by ``window``, so the sequence model steps once every
``temporal_pool * window`` input bins. :class:`StreamMixin` carries all states between calls:

>>> model.eval()
>>> state = None
>>> for x_t in x:                      # x [T, B, *input_shape]
...     logits, state = model.step(x_t, state)   # logits [B, classes] whenever a window completed
>>> logits = model.finish(state)       # == model(x), incomplete last windows included

``finish`` does not change the state, so the stream may go on after it. Eval mode only (BatchNorm and
the interface's rate normalisation use their running statistics).
"""

from __future__ import annotations

import torch

from mambaspike.errors import ConfigError


class StreamMixin:
    """Needs ``self.front`` (``step``/``finish``), ``self.interface`` (``step``/``finish``),
    ``self._seq_step(a [B, D], state) -> (h [B, H], state)`` and ``self.head`` (a ClassifierHead).

    State: ``(front_state, interface_state, seq_state, h_sum [B, H], windows)``.
    """

    def _check_streamable(self) -> None:
        if self.training:
            raise ConfigError(f"{type(self).__name__}.step: streaming needs eval mode; call model.eval() first")

    def _push_window(self, a, seq_state, h_sum, n):
        h, seq_state = self._seq_step(a, seq_state)  # (B, H)
        return seq_state, (h if h_sum is None else h_sum + h), n + 1

    def step(self, x: torch.Tensor, state=None):
        """One input bin ``x [B, *input_shape]`` -> ``(logits [B, classes] or None, state)``; logits
        come whenever this bin completed a backbone window (those of the whole prefix so far)."""
        self._check_streamable()
        fs, is_, ss, h_sum, n = state if state is not None else (None, None, None, None, 0)
        f, fs = self.front.step(x, fs)
        logits = None
        if f is not None:
            a, is_ = self.interface.step(f, is_)
            if a is not None:
                ss, h_sum, n = self._push_window(a, ss, h_sum, n)
                logits = self.head.from_sum(h_sum, n)
        return logits, (fs, is_, ss, h_sum, n)

    def finish(self, state) -> torch.Tensor:
        """Logits ``[B, classes]`` of everything streamed, identical to ``forward`` on it: the
        incomplete pooling and interface windows at the end are flushed (on copies of the states)."""
        self._check_streamable()
        if state is None:
            raise ConfigError("finish: nothing was streamed (state is None)")
        fs, is_, ss, h_sum, n = state
        f = self.front.finish(fs)
        if f is not None:
            a, is_ = self.interface.step(f, is_)
            if a is not None:
                ss, h_sum, n = self._push_window(a, ss, h_sum, n)
        a = self.interface.finish(is_)
        if a is not None:
            ss, h_sum, n = self._push_window(a, ss, h_sum, n)
        return self.head.from_sum(h_sum, n)

    @torch.no_grad()
    def stream(self, x: torch.Tensor) -> torch.Tensor:
        """Feed ``x [T, B, *input_shape]`` bin by bin; the final logits ``[B, classes]``."""
        state = None
        for x_t in x.unbind(0):
            _, state = self.step(x_t, state)
        return self.finish(state)
