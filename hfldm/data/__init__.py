"""Datasets and the one image loader.

emoji.py (the emoji builder), digits.py (scikit-learn digits), export.py (save_to_disk + imagefolder),
grid.py (contact sheets), images.py (safe decoding, RGB conversion, crops), arguments.py (DataArguments),
loader.py (load_image_dataset, collate_fn, make_dataloader),
latent_cache.py (cache_latents, load_latent_cache, load_uncond_embedding, sample_latents).
Import from the modules; this package imports nothing so that `hfldm --help` stays fast.
"""
