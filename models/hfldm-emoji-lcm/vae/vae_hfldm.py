"""KLAutoencoder for `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`,
written by hfldm's save_pretrained (hfldm 0.1.0). Its code is the folder's copy of hfldm's source next to
model_index.json (hfldm_autoencoders_kl.py), which diffusers copies into its module cache with the pipeline's file and
loads before any component.
"""

import importlib

# not `from .hfldm_autoencoders_kl import ...`: diffusers would then look for that file in this sub-folder
KLAutoencoder = importlib.import_module(".hfldm_autoencoders_kl", __package__).KLAutoencoder
