"""Speed against the peers as tracked ratios, measured side by side in one process
(``benchmarks/peers_speed.py``): scorecore's torch EDM and DPM-Solver++(2M) over k-diffusion's
``sample_heun``/``sample_dpmpp_2m`` on the same exact 8-ring denoiser (CPU, 1 thread, float32,
20 steps; the targets are ≤ 1.00), its Euler ancestral over ``sample_euler_ancestral`` given
scorecore's batch-invariant noise (the same samples; target ≤ 1.05), and JAX's repeated
``sc.sample`` call over the same run compiled once and kept (target ≤ 1.2)."""

import peers_speed


class TorchOverKDiffusion:
    params = ([4096, 16384],)
    param_names = ["batch"]
    unit = "ratio"
    timeout = 900
    repeat = 1
    number = 1

    def setup(self, batch):
        try:
            torch, kd = peers_speed.setup(1)
        except SystemExit as exc:  # k-diffusion not installed
            raise NotImplementedError(str(exc)) from exc
        import scorecore as sc

        self.r = {}
        for label, ours, theirs, _ in peers_speed.cases(sc, torch, kd, batch, 20):
            if "by hand" in label and "torch.randn" not in label:
                t_ours, t_kd = peers_speed.best_of([ours, theirs], 5)
                self.r[label.split(",")[0]] = t_ours / t_kd

    def track_edm_over_sample_heun(self, batch):
        return self.r["EDM / Heun"]

    def track_dpmpp_2m_over_sample_dpmpp_2m(self, batch):
        return self.r["DPM-Solver++(2M)"]

    def track_euler_ancestral_over_its_loop_with_the_same_noise(self, batch):
        return self.r["Euler ancestral"]


class JaxRepeatedCall:
    unit = "ratio"
    timeout = 900
    repeat = 1
    number = 1

    def setup(self):
        try:
            _, self.again, self.seeds, self.warm = peers_speed.jax_repeat()
        except ImportError as exc:
            raise NotImplementedError(str(exc)) from exc

    def track_second_call_over_kept_run(self):
        return self.again / self.warm

    def track_new_seed_over_kept_run(self):
        return self.seeds / self.warm
