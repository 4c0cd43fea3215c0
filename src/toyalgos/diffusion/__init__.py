"""Diffusion models: DDPM/DDIM and the shared pieces of the diffusion and flow notebooks."""

from . import data
from .ddpm import DDPM, ddim_step, ddim_timesteps, ddpm_step, predict_x0
from .metrics import mmd_rbf, sliced_wasserstein
from .schedules import NoiseSchedule, q_posterior, q_sample, q_step

__all__ = [
    "DDPM",
    "NoiseSchedule",
    "data",
    "ddim_step",
    "ddim_timesteps",
    "ddpm_step",
    "mmd_rbf",
    "predict_x0",
    "q_posterior",
    "q_sample",
    "q_step",
    "sliced_wasserstein",
]
