"""Independent NumPy/SciPy float64 oracle for scorecore (does not import scorecore)."""
from .sde import VE, VP, SubVP, moments_by_ode
from .mixture import GaussianMixture
from .gaussian_kernel import kernel_log_prob, kernel_score
from .samplers import annealed_langevin, euler_maruyama_reverse, probability_flow_euler
from .ncsn import gamma_ratio, gamma_equation, step_size, step_size_objective, max_pairwise_distance

__all__ = [
    "VE", "VP", "SubVP", "moments_by_ode",
    "GaussianMixture",
    "kernel_log_prob", "kernel_score",
    "annealed_langevin", "euler_maruyama_reverse", "probability_flow_euler",
    "gamma_ratio", "gamma_equation", "step_size", "step_size_objective", "max_pairwise_distance",
]
