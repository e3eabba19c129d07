"""Latent consistency distillation's equations (hfldm.training.consistency) and the w-embedding of the U-Net:
closed forms, parity with diffusers' LCMScheduler and with the teacher's own DDIM step, student = teacher at
step 0."""

from __future__ import annotations

import pytest
import torch
from _jitter import jitter
from _ldm_fixtures import TEXT_DIM, tiny_unet
from diffusers import LatentConsistencyModelPipeline, LCMScheduler

from hfldm import ConditionalUNet
from hfldm.nn.embeddings import guidance_scale_embedding
from hfldm.schedulers.ddim import DDIMScheduler
from hfldm.training.consistency import (
    adjacent_timesteps,
    boundary_coefficients,
    consistency_output,
    ddim_solver_step,
    guided,
    pseudo_huber,
    skipping_schedule,
    student_from_teacher,
)


def test_boundary_conditions_hold_at_zero_and_match_lcm_scheduler():
    c_skip, c_out = boundary_coefficients(torch.tensor([0]))
    assert c_skip.item() == 1.0 and c_out.item() == 0.0  # f(z, 0) = z  (CM eq. 7)
    lcm = LCMScheduler()
    t = torch.tensor([19, 259, 999])
    c_skip, c_out = boundary_coefficients(t, lcm.config.timestep_scaling)
    for i, step in enumerate(t.tolist()):
        skip, out = lcm.get_scalings_for_boundary_condition_discrete(step)
        assert c_skip[i].item() == pytest.approx(skip, rel=1e-6) and c_out[i].item() == pytest.approx(out)
    # f = c_skip z + c_out x̂_0: at t = 0 the consistency function returns its input, whatever the U-Net says
    z, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    ab = torch.as_tensor(lcm.alphas_cumprod)
    f0 = consistency_output(eps, z, torch.tensor([0, 0]), ab, "epsilon")
    assert torch.allclose(f0, z)


def test_skipping_schedule_is_lcm_schedulers_origin_grid():
    schedule, k = skipping_schedule(1000, 50)
    assert k == 20 and schedule[0] == 19 and schedule[-1] == 999 and len(schedule) == 50
    lcm = LCMScheduler(original_inference_steps=50)
    lcm.set_timesteps(50)  # every one of the origin timesteps, descending
    assert sorted(lcm.timesteps.tolist()) == schedule.tolist()
    start, prev = adjacent_timesteps(schedule, k, torch.tensor([0, 1, 49]))
    assert start.tolist() == [19, 39, 999] and prev.tolist() == [0, 19, 979]


def test_ddim_solver_step_equals_the_teacher_schedulers_own_step():
    """Ψ(z_{t_{n+k}}) from the guided x̂_0 and ε̂ is the DDIM scheduler's step t -> t - T/N at η = 0, for the
    guided ε (guidance is linear, so mixing x̂_0 and ε̂ is mixing ε)."""
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False
    )
    scheduler.set_timesteps(50)
    ab = scheduler.alphas_cumprod
    g = torch.Generator().manual_seed(0)
    z, eps_c, eps_u = (torch.randn(3, 4, 8, 8, generator=g) for _ in range(3))
    t, t_prev = torch.tensor([999, 499, 39]), torch.tensor([979, 479, 19])
    w = torch.tensor([1.0, 3.0, 7.5])
    a = ab[t][:, None, None, None]
    x0_c, x0_u = ((z - (1 - a) ** 0.5 * e) / a**0.5 for e in (eps_c, eps_u))
    ours = ddim_solver_step(guided(x0_c, x0_u, w), guided(eps_c, eps_u, w), ab, t_prev)
    for i in range(3):
        eps = guided(eps_c[i : i + 1], eps_u[i : i + 1], w[i : i + 1])
        theirs = scheduler.step(eps, int(t[i]), z[i : i + 1], eta=0.0).prev_sample
        torch.testing.assert_close(ours[i : i + 1], theirs, rtol=1e-5, atol=1e-5)


def test_pseudo_huber_closed_form():
    a, b = torch.zeros(4), torch.tensor([0.0, 3.0, 4.0, 0.0])
    assert pseudo_huber(a, b, c=0.0).item() == pytest.approx(7 / 4)  # c = 0: L1
    assert pseudo_huber(a, b, c=1.0).item() == pytest.approx(((10**0.5 - 1) + (17**0.5 - 1)) / 4)


def test_guidance_embedding_is_diffusers_lcm_pipelines():
    """The features of w are diffusers' LCM pipelines' `get_guidance_scale_embedding(w − 1)`."""
    w = torch.tensor([1.0, 3.0, 8.5])
    theirs = LatentConsistencyModelPipeline.get_guidance_scale_embedding(None, w - 1, embedding_dim=32)
    # sin of arguments up to 7500 in fp32: the two orders of operations differ by ~1e-4
    torch.testing.assert_close(guidance_scale_embedding(w, 32), theirs, rtol=0, atol=5e-4)


def test_zero_initialised_w_embedding_leaves_the_student_equal_to_the_teacher():
    teacher = jitter(tiny_unet(cross_attention_dim=TEXT_DIM), seed=3)  # outputs that are not 0
    student = student_from_teacher(teacher, time_cond_proj_dim=32).eval()
    assert student.config.time_cond_proj_dim == 32 and not student.time_embedding.cond_proj.weight.any()
    g = torch.Generator().manual_seed(0)
    z, text = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 5, TEXT_DIM, generator=g)
    t = torch.tensor([999, 500, 20])
    with torch.no_grad():
        ref = teacher(z, t, encoder_hidden_states=text).sample
        assert ref.abs().mean() > 1e-2
        for w in (1.0, 3.0, 9.0):
            cond = guidance_scale_embedding(torch.full((3,), w), 32)
            out = student(z, t, encoder_hidden_states=text, timestep_cond=cond).sample
            assert torch.equal(out, ref)
        # once trained, w changes the output
        torch.nn.init.normal_(student.time_embedding.cond_proj.weight, std=0.1)
        one, three = (
            student(
                z,
                t,
                encoder_hidden_states=text,
                timestep_cond=guidance_scale_embedding(torch.full((3,), w), 32),
            ).sample
            for w in (1.0, 3.0)
        )
        assert (one - three).abs().max() > 1e-4


def test_configs_without_the_key_load_unchanged_and_refuse_timestep_cond(tmp_path):
    teacher = tiny_unet()
    teacher.save_pretrained(tmp_path)
    again = ConditionalUNet.from_pretrained(tmp_path)
    assert again.config.time_cond_proj_dim is None and again.time_embedding.cond_proj is None
    assert "time_embedding.cond_proj.weight" not in again.state_dict()
    z = torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match="^timestep_cond: this U-Net has no guidance-scale embedding"):
        again(z, 10, timestep_cond=torch.zeros(1, 32))
    student = student_from_teacher(teacher, 32)
    with pytest.raises(ValueError, match=r"^timestep_cond: expected \(1, 32\)"):
        student(z, 10, timestep_cond=torch.zeros(1, 16))
    student.save_pretrained(tmp_path / "student")
    assert ConditionalUNet.from_pretrained(tmp_path / "student").config.time_cond_proj_dim == 32
