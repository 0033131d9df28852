"""NFE/s (score evaluations per second, exact counts over warm wall time) and sample quality
per NFE.

Each measurement runs :class:`scorecore.bench.Bench`: the sampler's program is built and
run once in ``setup`` (JAX traces and compiles the whole run, ``torch.compile`` compiles the
step), then the tracked value is the best of 3 warm runs, each ending with
``block_until_ready`` inside the timed region. ``STEPS`` steps per run keep
``asv run --quick`` within minutes on 2 CPU cores.

Backends: ``numpy``, ``torch`` (eager), ``torch-compile`` (compiled step), ``jax`` (whole run
jitted), ``cupy``. On a machine with a GPU, torch and JAX run on it and CuPy is measured;
without one CuPy is skipped. Skipped on CPU to keep the run short (asv shows them as n/a):

* the U-Net at batch 16,384; at batch 256 it runs ``UNET_CPU_BATCH`` = 8 images on CPU
  (a 20-step run at 256 takes minutes per sampler on 2 cores); the adaptive solver on the
  U-Net (its step count, not speed, is what differs);
* ``torch-compile`` except Heun on the 2-D mixture and the MLP at batch 16,384 (compiling
  costs 20–100 s per combination on 2 cores, and the compiled step is what is measured);
* NumPy has no U-Net.
"""


from scorecore.bench import MODELS, SAMPLERS, Bench

STEPS = 10
UNET_CPU_BATCH = 8
BACKENDS = ["numpy", "torch", "torch-compile", "jax", "cupy"]


def _gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def resolve(backend: str) -> str:
    """The benchmark backend name on this machine: torch and JAX on the GPU when there is one."""
    if not _gpu():
        return backend
    return {"torch": "torch-cuda", "torch-compile": "torch-compile-cuda", "jax": "jax-gpu"}.get(backend, backend)


def skip_reason(backend, sampler, batch, model, gpu: bool):
    """Why a combination is not measured (None: it is)."""
    if model == "unet" and backend == "numpy":
        return "no U-Net on NumPy"
    if model == "unet" and backend == "cupy":
        return "no U-Net on CuPy"
    if gpu:
        return None
    if backend == "cupy":
        return "no GPU"
    if model == "unet" and (batch > 256 or sampler == "dopri5"):
        return "U-Net: CPU budget"
    if backend == "torch-compile" and not (sampler == "heun" and batch == 16384 and model in ("mixture-2d", "mlp")):
        return "torch.compile: CPU budget"
    return None


class NFEPerSecond:
    """Throughput: NFE/s of backend × sampler × batch × model."""

    params = (BACKENDS, list(SAMPLERS), [256, 16384], list(MODELS))
    param_names = ["backend", "sampler", "batch", "model"]
    unit = "NFE/s"
    timeout = 600
    repeat = 1
    number = 1

    def setup(self, backend, sampler, batch, model):
        gpu = _gpu()
        reason = skip_reason(backend, sampler, batch, model, gpu)
        if reason:
            raise NotImplementedError(reason)
        n = batch if (gpu or model != "unet") else min(batch, UNET_CPU_BATCH)
        try:
            self.bench = Bench(resolve(backend), model, sampler, n, STEPS)
            self.bench.run(0)  # warm-up: jit / torch.compile, caches
        except (ImportError, RuntimeError) as exc:  # framework missing, no device
            raise NotImplementedError(str(exc)) from exc

    def track_nfe_per_second(self, backend, sampler, batch, model):
        return self.bench.nfe_per_second(repeats=3)


class SampleQuality:
    """Accuracy beside speed: sliced W₂ to exact samples of the 8-ring (VP SDE, float32,
    4,096 samples) at a fixed budget of about 40 NFE, and the NFE actually spent."""

    params = (["numpy", "torch", "jax"], list(SAMPLERS))
    param_names = ["backend", "sampler"]
    timeout = 300
    repeat = 1
    number = 1
    #: steps giving ≈ 40 NFE: PC 2/step, Heun 2N − 1, DPM-Solver++ 1/step; the adaptive
    #: solver's NFE follows from its tolerance (rtol = atol = 1e-2) and is tracked too.
    STEPS = {"pc": 20, "heun": 20, "dopri5": 200, "dpmpp_2m": 40}
    N = 4096

    def setup(self, backend, sampler):
        import scorecore as sc

        try:
            bench = Bench(resolve(backend), "mixture-2d", sampler, self.N, self.STEPS[sampler])
            x, self.nfe = bench.run(0)
        except (ImportError, RuntimeError) as exc:
            raise NotImplementedError(str(exc)) from exc
        exact = sc.GaussianMixture.example("8-ring").sample(self.N, seed=10_000)
        self.sw2 = sc.metrics.sliced_wasserstein(bench.be.to_numpy(x), exact)

    def track_sw2(self, backend, sampler):
        return self.sw2

    track_sw2.unit = "SW2"

    def track_sw2_nfe(self, backend, sampler):
        return self.nfe

    track_sw2_nfe.unit = "NFE"
