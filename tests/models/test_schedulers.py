"""hfldm's DDPM and DDIM schedulers: parity with diffusers, closed forms, config interop, bad input."""

import itertools

import diffusers
import pytest
import torch

from hfldm.schedulers import ConsistentDDIMScheduler, DDIMScheduler, DDPMScheduler
from hfldm.schedulers.base import posterior_coefficients

BETA_SCHEDULES = ["linear", "scaled_linear", "squaredcos_cap_v2"]
PREDICTION_TYPES = ["epsilon", "v_prediction", "sample"]
SHAPE = (2, 3, 8, 8)


def fake_model(x: torch.Tensor, t: int) -> torch.Tensor:
    """A fixed, deterministic stand-in for the denoiser: a smooth function of x_t and t."""
    return 0.9 * torch.tanh(x) + 0.2 * torch.cos(0.5 * x + t / 100.0)


def run_chain(scheduler, steps: int | None, seed: int = 0, **step_kwargs) -> list[torch.Tensor]:
    """Sample from x_T ~ N(0, I) with `fake_model`; returns [x_T, ..., x_0] and the x̂_0 of every step."""
    if steps is not None:
        scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(SHAPE, generator=generator)
    out = [x]
    for t in scheduler.timesteps:
        result = scheduler.step(fake_model(x, int(t)), t, x, generator=generator, **step_kwargs)
        x = result.prev_sample
        out += [x, result.pred_original_sample]
    return out


def assert_same_forward_process(ours, theirs) -> None:
    """alphas_cumprod, add_noise and get_velocity agree with diffusers' within 1e-5."""
    torch.testing.assert_close(ours.alphas_cumprod, theirs.alphas_cumprod, atol=1e-6, rtol=0)
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=g)
    t = torch.tensor([3, len(ours) - 1])
    torch.testing.assert_close(
        ours.add_noise(x0, noise, t), theirs.add_noise(x0, noise, t), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        ours.get_velocity(x0, noise, t), theirs.get_velocity(x0, noise, t), atol=1e-5, rtol=0
    )


# 1. parity with diffusers on the same config and seed ---------------------------------------------------


@pytest.mark.parametrize(
    "beta_schedule,prediction_type,variance_type",
    list(itertools.product(BETA_SCHEDULES, PREDICTION_TYPES, ["fixed_small", "fixed_large"])),
)
def test_ddpm_matches_diffusers(beta_schedule, prediction_type, variance_type):
    config = dict(beta_schedule=beta_schedule, prediction_type=prediction_type, variance_type=variance_type)
    ours, theirs = DDPMScheduler(**config), diffusers.DDPMScheduler(**config)
    assert_same_forward_process(ours, theirs)
    for a, b in zip(run_chain(ours, 25), run_chain(theirs, 25), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "beta_schedule,prediction_type,eta", list(itertools.product(BETA_SCHEDULES, PREDICTION_TYPES, [0.0, 1.0]))
)
def test_ddim_matches_diffusers(beta_schedule, prediction_type, eta):
    config = dict(beta_schedule=beta_schedule, prediction_type=prediction_type)
    ours, theirs = DDIMScheduler(**config), diffusers.DDIMScheduler(**config)
    assert_same_forward_process(ours, theirs)
    for a, b in zip(run_chain(ours, 25, eta=eta), run_chain(theirs, 25, eta=eta), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spacing,steps_offset", [("leading", 1), ("trailing", 0), ("linspace", 0)])
@pytest.mark.parametrize("cls", ["DDPMScheduler", "DDIMScheduler"])
def test_spacings_and_options_match_diffusers(cls, spacing, steps_offset):
    config = dict(
        beta_schedule="scaled_linear", timestep_spacing=spacing, steps_offset=steps_offset, clip_sample=False
    )
    if cls == "DDIMScheduler":
        config["set_alpha_to_one"] = False
    ours = {"DDPMScheduler": DDPMScheduler, "DDIMScheduler": DDIMScheduler}[cls](**config)
    theirs = getattr(diffusers, cls)(**config)
    kwargs = {"eta": 0.5, "use_clipped_model_output": True} if cls == "DDIMScheduler" else {}
    for steps in (7, 30):
        for a, b in zip(run_chain(ours, steps, **kwargs), run_chain(theirs, steps, **kwargs), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.timesteps, theirs.timesteps, atol=0, rtol=0)


@pytest.mark.parametrize("variance_type", ["fixed_small_log", "learned", "learned_range"])
def test_ddpm_full_chain_and_other_variance_types_match_diffusers(variance_type):
    config = dict(num_train_timesteps=40, variance_type=variance_type, thresholding=True)
    ours, theirs = DDPMScheduler(**config), diffusers.DDPMScheduler(**config)
    generators = [torch.Generator().manual_seed(3) for _ in range(2)]
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4))
    xs = [x, x]
    for t in range(39, -1, -1):  # no set_timesteps: every t of the training chain
        for i, scheduler in enumerate((ours, theirs)):
            out = fake_model(xs[i], t)
            if variance_type.startswith("learned"):
                out = torch.cat([out, torch.sigmoid(xs[i])], dim=1)  # (B, 2C): ε and the variance output
            xs[i] = scheduler.step(out, t, xs[i], generator=generators[i]).prev_sample
        torch.testing.assert_close(xs[0], xs[1], atol=1e-5, rtol=0)


# 2. closed forms of the papers ------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0, 250, 999])
def test_add_noise_has_mean_sqrt_alpha_bar_x0_and_variance_one_minus_alpha_bar(t):
    scheduler, n = DDPMScheduler(beta_schedule="squaredcos_cap_v2"), 200_000
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((n,), 0.7)
    x_t = scheduler.add_noise(x0, torch.randn(n, generator=g), torch.full((n,), t))
    alpha_bar = scheduler.alphas_cumprod[t].item()
    assert abs(x_t.mean().item() - alpha_bar**0.5 * 0.7) < 4 * ((1 - alpha_bar) / n) ** 0.5 + 1e-6
    assert abs(x_t.var().item() / (1 - alpha_bar) - 1) < 0.02  # sd of the ratio is √(2/n) ≈ 0.003


@pytest.mark.parametrize("beta_schedule", BETA_SCHEDULES)
def test_posterior_is_the_gaussian_conditional_of_ddpm_eq_7(beta_schedule):
    s = DDPMScheduler(beta_schedule=beta_schedule)
    beta = s.betas.double()
    alpha_bar = torch.cumprod(1 - beta, dim=0)  # ᾱ_t = ∏ (1 - β_s), in float64
    torch.testing.assert_close(s.alphas_cumprod, alpha_bar.float(), atol=1e-6, rtol=0)
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    # β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t)
    expected_variance = beta * (1 - alpha_bar_prev) / (1 - alpha_bar)
    coef1_all, coef2_all, variance = posterior_coefficients(alpha_bar, alpha_bar_prev)  # what step() computes
    torch.testing.assert_close(variance, expected_variance, atol=1e-12, rtol=1e-9)
    # Bayes: q(x_{t-1}|x_t,x_0) ∝ N(x_t; √α_t x_{t-1}, β_t) N(x_{t-1}; √ᾱ_{t-1} x_0, 1-ᾱ_{t-1})
    t = slice(1, None)
    precision = 1 / (1 - alpha_bar_prev[t]) + (1 - beta[t]) / beta[t]
    coef1 = alpha_bar_prev[t].sqrt() / (1 - alpha_bar_prev[t]) / precision
    coef2 = (1 - beta[t]).sqrt() / beta[t] / precision
    torch.testing.assert_close(variance[t], 1 / precision, atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(coef1_all[t], coef1, atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(coef2_all[t], coef2, atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(s.sqrt_alphas_cumprod**2, s.alphas_cumprod)


def test_ddpm_step_on_full_chain_is_posterior_mean_plus_sigma_z():
    s = DDPMScheduler(num_train_timesteps=100, clip_sample=False)
    x_t, t = torch.randn(SHAPE), 37
    eps = fake_model(x_t, t)
    out = s.step(eps, t, x_t, generator=torch.Generator().manual_seed(5))
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))
    x0 = (x_t - s.sqrt_one_minus_alphas_cumprod[t] * eps) / s.sqrt_alphas_cumprod[t]  # DDPM eq. 15
    alpha_bar = torch.cumprod(1 - s.betas.double(), dim=0)  # float64: the coefficients of DDPM eq. 7
    beta_t, a_t, a_prev = s.betas[t].double(), alpha_bar[t], alpha_bar[t - 1]
    coef1, coef2 = a_prev.sqrt() * beta_t / (1 - a_t), (1 - beta_t).sqrt() * (1 - a_prev) / (1 - a_t)
    mean, sigma = coef1 * x0 + coef2 * x_t, ((1 - a_prev) / (1 - a_t) * beta_t).sqrt()
    torch.testing.assert_close(out.pred_original_sample, x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.prev_sample, (mean + sigma * z).float(), atol=1e-5, rtol=1e-5)


def test_ddim_previous_timestep_diffusers_vs_consistent():
    """linspace, T = 1000, n = 7: timesteps 999, 832, ...; diffusers' DDIM steps from 999 to ᾱ_857
    (t - T // n), the consistent one to ᾱ_832, the timestep evaluated next; with leading spacing, alike."""
    config = dict(timestep_spacing="linspace", clip_sample=False, set_alpha_to_one=False)
    x, eps = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)), torch.zeros(SHAPE)
    for cls, landing in ((DDIMScheduler, 857), (ConsistentDDIMScheduler, 832)):
        s = cls(**config)
        s.set_timesteps(7)
        assert s.timesteps.tolist()[:2] == [999, 832]
        # ε = 0: x̂_0 = x / √ᾱ_999 and x_{t'} = √ᾱ_{t'} x̂_0, which names t'
        expected = (s.alphas_cumprod[landing] / s.alphas_cumprod[999]).sqrt() * x
        torch.testing.assert_close(s.step(eps, 999, x).prev_sample, expected, atol=1e-6, rtol=1e-5)
    leading = [DDIMScheduler(clip_sample=False), ConsistentDDIMScheduler(clip_sample=False)]
    chains = [run_chain(s, 20) for s in leading]
    for a, b in zip(*chains, strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("cls", [DDPMScheduler, DDIMScheduler])
def test_oracle_denoiser_for_a_point_mass_recovers_it(cls):
    """With data x_0 = c, the exact ε(x_t) = (x_t - √ᾱ_t c)/√(1-ᾱ_t); sampling must end at c."""
    s, c = cls(clip_sample=False), torch.linspace(-0.8, 0.8, 3 * 64).reshape(1, 3, 8, 8)
    s.set_timesteps(20)
    x, g = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1)
    for t in s.timesteps:
        eps = (x - s.sqrt_alphas_cumprod[t] * c) / s.sqrt_one_minus_alphas_cumprod[t]
        x = s.step(eps, t, x, generator=g).prev_sample
    torch.testing.assert_close(x, c.expand(SHAPE), atol=1e-4, rtol=0)


def test_ddim_is_deterministic_at_eta_0_and_equals_ddpm_posterior_at_eta_1():
    ddim, ddpm = DDIMScheduler(clip_sample=False), DDPMScheduler(clip_sample=False)
    ddim.set_timesteps(50)
    ddpm.set_timesteps(50)
    x_t, t = torch.randn(SHAPE), int(ddim.timesteps[10])
    eps = fake_model(x_t, t)
    a, b = (ddim.step(eps, t, x_t, eta=0.0, generator=torch.Generator().manual_seed(i)) for i in (0, 1))
    torch.testing.assert_close(a.prev_sample, b.prev_sample, atol=0, rtol=0)
    # σ_t(η=1)² = β̃_t, so DDIM eq. 12 is the DDPM posterior sample (DDIM Sec. 4.1)
    x_ddim = ddim.step(eps, t, x_t, eta=1.0, generator=torch.Generator().manual_seed(2)).prev_sample
    x_ddpm = ddpm.step(eps, t, x_t, generator=torch.Generator().manual_seed(2)).prev_sample
    torch.testing.assert_close(x_ddim, x_ddpm, atol=1e-5, rtol=1e-5)
    assert (x_ddim - a.prev_sample).abs().mean() > 0.01


# 3. config interop ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta_schedule", BETA_SCHEDULES)
@pytest.mark.parametrize(
    "target",
    [diffusers.DDIMScheduler, diffusers.DPMSolverMultistepScheduler, diffusers.EulerDiscreteScheduler],
)
def test_diffusers_schedulers_load_our_config(beta_schedule, target):
    ours = DDPMScheduler(
        beta_schedule=beta_schedule, beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction"
    )
    theirs = target.from_config(ours.config)
    torch.testing.assert_close(theirs.alphas_cumprod, ours.alphas_cumprod, atol=0, rtol=0)
    assert theirs.config.prediction_type == "v_prediction"
    assert target in ours.compatibles


def test_our_schedulers_load_diffusers_configs():
    theirs = diffusers.DDPMScheduler(
        beta_schedule="scaled_linear", variance_type="fixed_large", steps_offset=1
    )
    ours = DDPMScheduler.from_config(theirs.config)
    assert dict(ours.config) == dict(theirs.config)
    torch.testing.assert_close(ours.alphas_cumprod, theirs.alphas_cumprod, atol=0, rtol=0)
    ddim = DDIMScheduler.from_config(theirs.config)  # a DDPM config: DDPM-only keys are dropped
    # as in diffusers, keys of compatible schedulers are kept, hidden, so that the config round-trips
    assert dict(ddim.config) == dict(diffusers.DDIMScheduler.from_config(theirs.config).config)
    assert ddim.config.steps_offset == 1 and "variance_type" not in ddim._get_init_keys(DDIMScheduler)
    assert dict(DDIMScheduler.from_config(diffusers.DDIMScheduler().config).config) == dict(
        diffusers.DDIMScheduler().config
    )


@pytest.mark.parametrize("cls", [DDPMScheduler, DDIMScheduler])
def test_save_config_round_trip(cls, tmp_path):
    ours = cls(beta_schedule="squaredcos_cap_v2", prediction_type="sample", timestep_spacing="trailing")
    ours.save_config(tmp_path)
    for loader in (cls, getattr(diffusers, cls.__name__)):
        loaded = loader.from_pretrained(tmp_path)
        assert loaded.config.prediction_type == "sample" and loaded.config.timestep_spacing == "trailing"
        torch.testing.assert_close(loaded.alphas_cumprod, ours.alphas_cumprod, atol=0, rtol=0)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(cls.from_pretrained(tmp_path).config) == public(ours.config)


# 4. bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"beta_schedule": "quadratic"}, "beta_schedule"),
        ({"prediction_type": "x0"}, "prediction_type"),
        ({"timestep_spacing": "uniform"}, "timestep_spacing"),
        ({"num_train_timesteps": 0}, "num_train_timesteps"),
        ({"num_train_timesteps": 10, "trained_betas": [0.1] * 9}, "trained_betas"),
    ],
)
@pytest.mark.parametrize("cls", [DDPMScheduler, DDIMScheduler])
def test_bad_config_raises_naming_the_argument(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


def test_bad_call_arguments_raise_naming_the_argument():
    with pytest.raises(ValueError, match="variance_type"):
        DDPMScheduler(variance_type="fixed_medium")
    ddpm, ddim, x = (
        DDPMScheduler(num_train_timesteps=50),
        DDIMScheduler(num_train_timesteps=50),
        torch.zeros(SHAPE),
    )
    for bad in (0, 51, 2.5):
        with pytest.raises(ValueError, match="num_inference_steps"):
            ddpm.set_timesteps(bad)
    with pytest.raises(ValueError, match="steps_offset"):
        DDPMScheduler(num_train_timesteps=50, steps_offset=1).set_timesteps(50)
    for bad in (50, -1, torch.tensor(50)):
        with pytest.raises(ValueError, match="timestep"):
            ddpm.step(x, bad, x)
    with pytest.raises(ValueError, match="timesteps"):
        ddpm.add_noise(x, x, torch.tensor([0, 50]))
    with pytest.raises(ValueError, match="num_inference_steps"):
        ddim.step(x, 10, x)  # before set_timesteps
    ddpm.set_timesteps(10)
    ddim.set_timesteps(10)
    with pytest.raises(ValueError, match="timestep"):
        ddpm.step(x, 7, x)  # not one of ddpm.timesteps
    with pytest.raises(ValueError, match="eta"):
        ddim.step(x, 10, x, eta=-1.0)
    with pytest.raises(ValueError, match="model_output"):
        DDPMScheduler(variance_type="learned_range").step(x, 3, x)  # needs 2C channels
