"""The null class ∅ of classifier-free guidance (Ho & Salimans 2022) in a class-conditional U-Net.

Convention for training and sampling alike: of the `num_class_embeds` class embeddings the LAST one, index
`num_class_embeds - 1`, is y = ∅; the real classes are 0 .. num_class_embeds - 2. A model of K classes has
`num_class_embeds = K + 1`, and training replaces a label by ∅ with the guidance drop probability.
"""


def null_class_label(num_class_embeds: int) -> int:
    """Index of the null (unconditional) class of a U-Net with `num_class_embeds` embeddings: the last."""
    return num_class_embeds - 1
