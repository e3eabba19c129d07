"""LDM's perceptual-compression autoencoders: encoder, regulariser (KL or VQ), decoder."""

from hfldm.autoencoders.discriminator import NLayerDiscriminator
from hfldm.autoencoders.identity import IdentityAutoencoder
from hfldm.autoencoders.kl import KLAutoencoder
from hfldm.autoencoders.regularizers import DiagonalGaussian, QuantizerOutput, VectorQuantizer
from hfldm.autoencoders.vq import VQAutoencoder

__all__ = [
    "DiagonalGaussian",
    "IdentityAutoencoder",
    "KLAutoencoder",
    "NLayerDiscriminator",
    "QuantizerOutput",
    "VQAutoencoder",
    "VectorQuantizer",
]
