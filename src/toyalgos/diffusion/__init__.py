"""Diffusion models: DDPM/DDIM and the shared pieces of the diffusion and flow notebooks."""

from . import data
from .ddpm import DDPM, ddim_step, ddim_timesteps, ddpm_step, predict_x0
from .edm import (
    EDM,
    FORMULATIONS,
    VE,
    VP,
    EDMDenoiser,
    FlowMatching,
    Formulation,
    GaussianMixtureDenoiser,
    Samples,
    edm_loss,
    edm_sample,
    edm_sigma_steps,
)
from .flow import (
    euler_sample,
    flow_matching_loss,
    interpolate,
    plot_trajectories,
    reflow_pairs,
    straightness,
    transport_cost,
)
from .metrics import mmd_rbf, sliced_wasserstein
from .schedules import NoiseSchedule, q_posterior, q_sample, q_step

__all__ = [
    "DDPM",
    "EDM",
    "EDMDenoiser",
    "FORMULATIONS",
    "FlowMatching",
    "Formulation",
    "GaussianMixtureDenoiser",
    "Samples",
    "VE",
    "VP",
    "edm_loss",
    "edm_sample",
    "edm_sigma_steps",
    "euler_sample",
    "flow_matching_loss",
    "interpolate",
    "plot_trajectories",
    "reflow_pairs",
    "straightness",
    "transport_cost",
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
