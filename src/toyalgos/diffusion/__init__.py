"""Diffusion models: DDPM/DDIM, the EDM frame (VP, VE, flow matching, EDM), rectified flow, and
the shared pieces of the diffusion and flow notebooks (toy data, the exact mixture denoiser,
sample-quality metrics, trajectory plots).

Every sampler returns ``toyalgos.core.Samples(x, nfe, trajectory)``; every loss takes the model
first and is bound for ``toyalgos.core.train`` with ``functools.partial``.
"""

from . import claims, data
from .ddpm import ddim_sample, ddim_step, ddim_timesteps, ddpm_loss, ddpm_sample, ddpm_step, predict_x0
from .edm import (
    EDM,
    FORMULATIONS,
    VE,
    VP,
    EDMDenoiser,
    FlowMatching,
    Formulation,
    edm_loss,
    edm_sample,
    edm_sigma_steps,
)
from .flow import (
    euler_sample,
    flow_matching_loss,
    interpolate,
    reflow_pairs,
    straightness,
    transport_cost,
)
from .metrics import (
    ModeCoverage,
    PrecisionRecall,
    convergence_order,
    mmd_rbf,
    mode_coverage,
    nfe_to_reach,
    precision_recall,
    sliced_wasserstein,
)
from .mixture import GaussianMixtureDenoiser, gaussian_mixture
from .plot import plot_trajectories
from .schedules import NoiseSchedule, q_posterior, q_sample, q_step

__all__ = [
    "EDM",
    "FORMULATIONS",
    "VE",
    "VP",
    "EDMDenoiser",
    "FlowMatching",
    "Formulation",
    "GaussianMixtureDenoiser",
    "NoiseSchedule",
    "claims",
    "convergence_order",
    "data",
    "ddim_sample",
    "ddim_step",
    "ddim_timesteps",
    "ddpm_loss",
    "ddpm_sample",
    "ddpm_step",
    "edm_loss",
    "edm_sample",
    "edm_sigma_steps",
    "euler_sample",
    "flow_matching_loss",
    "gaussian_mixture",
    "interpolate",
    "ModeCoverage",
    "PrecisionRecall",
    "mmd_rbf",
    "mode_coverage",
    "nfe_to_reach",
    "precision_recall",
    "plot_trajectories",
    "predict_x0",
    "q_posterior",
    "q_sample",
    "q_step",
    "reflow_pairs",
    "sliced_wasserstein",
    "straightness",
    "transport_cost",
]
