"""What the training scripts in `training/` share, one idea per module.

args: argument dataclasses, --config YAML, one-line errors | runtime: Accelerator, seeded data loader,
resumable batch iterator, optimiser, LR schedule | randomness: per-sample draws (t, ε, dropout, flips) |
losses: LDM objective, autoencoder reconstruction / KL / VQ / PatchGAN terms | latents: z_0 and the latent
scale | conditioning: τ_θ(y) or class labels with CFG dropout | ema | checkpoints | validation | models |
data | autoencoding.
"""
