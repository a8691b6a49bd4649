"""Denoising diffusion: DDPM with linear / cosine schedules, eps / x0 / v prediction,
DDIM sampling and the variational bound; a U-Net for images, an MLP for vectors."""
