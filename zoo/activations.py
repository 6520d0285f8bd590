"""The activation specs of model names, parsed without Keras (the layers are in ``zoo.builders.activations``).

Spec strings (used in model names):

* ``relu``: ``max(x, 0)``.
* ``leakyrelu[SLOPE]``: ``x if x > 0 else SLOPE * x`` (default slope 0.01, PyTorch's).
* ``elu[ALPHA]``: ``x if x > 0 else ALPHA * (exp(x) - 1)`` (default alpha 1).
* ``shiftedrelu[SHIFT]``: ``max(x, -SHIFT)`` (default shift 1: the ELU paper's SReLU).
* ``swish``: ``x * sigmoid(x)`` (Keras' ``silu``).
* ``maxout[PIECES]``: ``max_k (x W_k + b_k)`` over PIECES linear pieces (default 2), for
  dense layers only: it replaces the dense layer and its activation.
"""

from __future__ import annotations

import re

_DEFAULTS = {"leakyrelu": 0.01, "elu": 1.0, "shiftedrelu": 1.0, "maxout": 2}
_SPEC = re.compile(r"^(relu|leakyrelu|elu|shiftedrelu|swish|maxout)(\d+(?:\.\d+)?(?:e-?\d+)?)?$")


def parse_activation(spec: str) -> tuple[str, float | None]:
    """Splits ``"elu0.5"`` into ``("elu", 0.5)``; a missing parameter gives its default.

    Raises:
        ValueError: if ``spec`` is not a known activation spec.
    """
    match = _SPEC.match(spec)
    if not match:
        raise ValueError(
            f"unknown activation {spec!r}; expected one of relu, leakyrelu[SLOPE], elu[ALPHA], "
            "shiftedrelu[SHIFT], swish, maxout[PIECES] (e.g. elu1, shiftedrelu0.3)"
        )
    kind, value = match.group(1), match.group(2)
    if value is None:
        return kind, _DEFAULTS.get(kind)
    if kind in ("relu", "swish"):
        raise ValueError(f"activation {kind!r} takes no parameter. Received: {spec!r}")
    return kind, (int(value) if kind == "maxout" else float(value))
