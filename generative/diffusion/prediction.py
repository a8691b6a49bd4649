"""What the denoiser predicts: noise ``eps``, clean data ``x0``, or velocity ``v``.

With ``x_t = a x_0 + s eps`` where ``a = sqrt(alpha_bar_t)``, ``s = sqrt(1 - alpha_bar_t)``
(so ``a^2 + s^2 = 1``), the velocity is ``v = a eps - s x_0``; then
``x_0 = a x_t - s v`` and ``eps = s x_t + a v``.
"""

from __future__ import annotations

from torch import Tensor

PREDICTIONS = ("eps", "x0", "v")


def training_target(prediction: str, x0: Tensor, noise: Tensor, alpha_bar: Tensor) -> Tensor:
    """The regression target ``(B, ...)`` for the denoiser; ``alpha_bar`` broadcasts."""
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    if prediction == "v":
        return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0
    raise ValueError(f"invalid prediction={prediction!r}: must be one of {', '.join(PREDICTIONS)}")


def to_x0_eps(
    prediction: str, output: Tensor, xt: Tensor, alpha_bar: Tensor
) -> tuple[Tensor, Tensor]:
    """Convert the denoiser's ``output`` at ``x_t`` into estimates ``(x0, eps)``."""
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    if prediction == "eps":
        return (xt - s * output) / a, output
    if prediction == "x0":
        return output, (xt - a * output) / s
    if prediction == "v":
        return a * xt - s * output, s * xt + a * output
    raise ValueError(f"invalid prediction={prediction!r}: must be one of {', '.join(PREDICTIONS)}")
