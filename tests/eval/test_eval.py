"""hfldm.eval: FID/KID, PSNR/SSIM, codebook usage, retrieval, the skin-tone rule, TextImageModel round trip.

The feature network is a tiny randomly initialised TextImageModel image tower (a fixed random CNN), so the
tests need neither the trained model nor internet; images are smooth random fields. The last (slow) test
checks the trained model in models/hfldm-textimage on the held-out emoji when both are available.
"""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hfldm.eval.degrade import add_gaussian_noise, gaussian_blur
from hfldm.eval.emoji_split import load_emoji_split
from hfldm.eval.features import TextImageFeatures, to_unit_range, weights_fingerprint
from hfldm.eval.fid import compute_fid_kid
from hfldm.eval.reconstruction import codebook_usage, psnr, ssim
from hfldm.eval.retrieval import clip_score, retrieval_accuracy, retrieval_from_embeddings
from hfldm.eval.sentence import encode_sentences
from hfldm.eval.subsets import base_name, skin_tone_variant_mask
from hfldm.eval.text_image import TextImageModel, info_nce_loss

TINY = dict(sample_size=16, block_out_channels=(8, 16), norm_num_groups=4, projection_dim=8)


@pytest.fixture(scope="module")
def features() -> TextImageFeatures:
    torch.manual_seed(0)
    return TextImageFeatures(TextImageModel(**TINY))


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """200 smooth random images (200, 3, 16, 16) in [0, 1]: upsampled 4x4 noise."""
    coarse = torch.rand(200, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    return F.interpolate(coarse, size=16, mode="bilinear", align_corners=False)


def test_fid_of_a_set_with_itself_is_zero_and_kid_unbiased(features, images):
    same = compute_fid_kid(images, images, features, kid_subset_size=50, kid_subsets=20)
    noisy = compute_fid_kid(images, add_gaussian_noise(images, 0.3), features, kid_subset_size=50)
    assert same["feature_network"] == features.name and same["feature_network"].startswith("hfldm-textimage@")
    assert noisy["fid"] > 0
    assert abs(same["fid"]) < 1e-3 * noisy["fid"]
    # KID is an unbiased MMD^2 estimate: on identical sets its mean is 0 up to its spread over subsets
    assert abs(same["kid_mean"]) <= same["kid_std"]
    assert noisy["kid_mean"] > 2 * noisy["kid_std"]


def test_fid_grows_monotonically_with_noise_and_blur(features, images):
    for degrade, levels in ((add_gaussian_noise, (0.05, 0.1, 0.2)), (gaussian_blur, (0.5, 1.0, 2.0))):
        fids = [
            compute_fid_kid(images, degrade(images, s), features, kid_subset_size=50)["fid"] for s in levels
        ]
        assert fids[0] > 0 and fids == sorted(fids), (degrade.__name__, fids)


def test_fid_accepts_minus_one_one_range(features, images):
    unit = compute_fid_kid(images, add_gaussian_noise(images, 0.1).clamp(0, 1), features, kid_subset_size=50)
    signed = compute_fid_kid(
        2 * images - 1,
        2 * add_gaussian_noise(images, 0.1).clamp(0, 1) - 1,
        features,
        kid_subset_size=50,
        value_range=(-1, 1),
    )
    assert signed["fid"] == pytest.approx(unit["fid"], rel=1e-5)


def test_fid_rejects_bad_input(features, images):
    with pytest.raises(ValueError, match="kid_subset_size"):
        compute_fid_kid(images[:10], images[:10], features, kid_subset_size=50)
    with pytest.raises(ValueError, match="images"):
        compute_fid_kid(images[:, :1], images, features)


def test_psnr_ssim_closed_forms():
    g = torch.Generator().manual_seed(3)
    x = 0.25 + 0.5 * torch.rand(8, 3, 32, 32, generator=g)  # in [0.25, 0.75]: noise of 0.05 is never clipped
    assert psnr(x, x) == math.inf
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    sigma = 0.05
    noisy = x + sigma * torch.randn(x.shape, generator=g)
    assert psnr(noisy, x) == pytest.approx(10 * math.log10(1 / sigma**2), abs=0.2)  # 26.02 dB
    # the same images in [-1, 1] give the same numbers (the peak is the range, not the max value)
    assert psnr(2 * noisy - 1, 2 * x - 1, value_range=(-1, 1)) == pytest.approx(psnr(noisy, x), abs=1e-4)
    # constant images a, b: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 1)^2 (Wang et al. eq. 13)
    a, b, c1 = 0.3, 0.6, 0.01**2
    constant = ssim(torch.full((2, 3, 32, 32), a), torch.full((2, 3, 32, 32), b))
    assert constant == pytest.approx((2 * a * b + c1) / (a**2 + b**2 + c1), rel=1e-6)


def test_codebook_usage_closed_forms():
    uniform = codebook_usage(torch.arange(16).repeat(5), codebook_size=16)
    assert uniform["perplexity"] == pytest.approx(16.0) and uniform["usage"] == 1.0
    half = codebook_usage(torch.tensor([0, 1, 2, 3] * 3), codebook_size=8)
    assert half["perplexity"] == pytest.approx(4.0) and half["used_codes"] == 4 and half["usage"] == 0.5
    assert codebook_usage(torch.zeros(10, dtype=torch.long), 4)["perplexity"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="indices"):
        codebook_usage(torch.tensor([4]), 4)


def test_retrieval_perfect_and_random_embeddings():
    perfect = torch.eye(50)
    result = retrieval_from_embeddings(perfect, perfect)
    assert result["top1"] == 1.0 and result["top5"] == 1.0
    assert result["chance_top1"] == 1 / 50 and result["chance_top5"] == 5 / 50
    g = torch.Generator().manual_seed(4)
    tops = [
        retrieval_from_embeddings(torch.randn(200, 16, generator=g), torch.randn(200, 16, generator=g))
        for _ in range(20)
    ]
    top1 = sum(r["top1"] for r in tops) / len(tops)
    top5 = sum(r["top5"] for r in tops) / len(tops)
    # mean of 4000 Bernoulli(p) draws: within 4 standard errors of chance
    assert abs(top1 - 1 / 200) < 4 * math.sqrt(1 / 200 / 4000)
    assert abs(top5 - 5 / 200) < 4 * math.sqrt(5 / 200 / 4000)


def test_retrieval_ranks_against_the_right_caption():
    # image 0 is closest to caption 1; image 1 is closest to caption 0 then to caption 1
    images = torch.tensor([[0.0, 1.0], [1.0, 0.2]])
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    result = retrieval_from_embeddings(images, texts, targets=torch.tensor([1, 1]), k=(1, 2))
    assert result["top1"] == 0.5 and result["top2"] == 1.0 and result["chance_top1"] == 1 / 3


def test_skin_tone_subset_rule():
    assert base_name("man technologist: dark skin tone") == "man technologist"
    assert base_name("woman: light skin tone, blond hair") == "woman: blond hair"
    assert base_name("handshake: light skin tone, dark skin tone") == "handshake"
    assert base_name("flag: Germany") == "flag: Germany"
    train = [
        "man technologist",
        "woman: blond hair",
        "handshake: medium skin tone, light skin tone",
        "flag: France",
    ]
    test = [
        "man technologist: dark skin tone",  # variant: the base emoji is in train
        "woman: light skin tone, blond hair",  # variant of "woman: blond hair"
        "handshake: light skin tone, dark skin tone",  # variant: another tone of handshake is in train
        "ninja: medium skin tone",  # skin tone, but no ninja in train
        "flag: Germany",  # no skin tone
    ]
    assert skin_tone_variant_mask(test, train) == [True, True, True, False, False]


def test_text_image_model_round_trip(tmp_path, images):
    torch.manual_seed(5)
    model = TextImageModel(**TINY).eval()
    with torch.no_grad():
        model.image_projection.weight.add_(0.1)  # make sure saved weights differ from a fresh init
    text = F.normalize(torch.randn(6, 384), dim=-1)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = TextImageModel.from_pretrained(tmp_path).eval()
    assert tuple(loaded.config.block_out_channels) == tuple(model.config.block_out_channels)
    with torch.no_grad():
        assert torch.equal(loaded(images[:6], text), model(images[:6], text))
        assert torch.equal(loaded.image_features(images[:6]), model.image_features(images[:6]))
    assert weights_fingerprint(loaded) == weights_fingerprint(model)


def test_info_nce_is_log_batch_size_at_chance_and_drops_when_trained(images):
    logits = torch.zeros(8, 8)
    assert info_nce_loss(logits).item() == pytest.approx(math.log(8))
    torch.manual_seed(6)
    model = TextImageModel(**TINY)
    text = F.normalize(torch.randn(16, 384, generator=torch.Generator().manual_seed(7)), dim=-1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = info_nce_loss(model(images[:16], text))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_to_unit_range_maps_and_validates():
    x = torch.tensor([-1.0, 0.0, 1.0]).reshape(1, 3, 1, 1)
    assert torch.equal(to_unit_range(x, (-1, 1)).flatten(), torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="images"):
        to_unit_range(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="value_range"):
        to_unit_range(x, (1, -1))


def test_sentence_embeddings_are_unit_norm_and_ignore_padding():
    captions = ["ok hand", "man technologist: medium-dark skin tone", "flag: United Kingdom"]
    together = encode_sentences(captions)  # padded to the longest caption
    alone = torch.cat([encode_sentences([c]) for c in captions])  # no padding
    assert together.shape == (3, 384)
    assert torch.allclose(together.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(together, alone, atol=1e-5)


def test_retrieval_accuracy_ranks_distinct_captions(images):
    torch.manual_seed(8)
    model = TextImageModel(**TINY).eval()
    captions = ["red heart", "red heart", "blue heart", "cat"]  # a repeated caption is one candidate
    result = retrieval_accuracy(model, images[:4], captions)
    assert result["num_captions"] == 3 and result["chance_top1"] == 1 / 3 and result["top5"] == 1.0
    wider = retrieval_accuracy(model, images[:4], captions, candidates=captions + ["dog", "fish"])
    assert wider["num_captions"] == 5 and wider["top1"] <= result["top1"]
    with pytest.raises(ValueError, match="candidates"):
        retrieval_accuracy(model, images[:4], captions, candidates=["cat"])
    with pytest.raises(ValueError, match="captions"):
        retrieval_accuracy(model, images[:4], captions[:3])


TRAINED = Path(__file__).resolve().parents[2] / "models" / "hfldm-textimage"


@pytest.mark.slow
@pytest.mark.skipif(not (TRAINED / "config.json").is_file(), reason="trained text–image model not present")
def test_trained_model_retrieves_held_out_emoji():
    pytest.importorskip("hfldm.data.emoji")
    from hfldm.data.emoji import EMOJI_FONT, EMOJI_TEST

    if not (EMOJI_FONT.is_file() and EMOJI_TEST.is_file()):
        pytest.skip("emoji font / emoji-test.txt not installed")
    model = TextImageModel.from_pretrained(TRAINED).eval()
    test = load_emoji_split(resolution=model.config.sample_size)["test"]
    result = retrieval_accuracy(model, test.images, test.captions)
    assert result["top1"] > 10 * result["chance_top1"] and result["top5"] > result["top1"]
    shuffled = test.captions[1:] + test.captions[:1]
    assert clip_score(model, test.images, test.captions) > clip_score(model, test.images, shuffled) + 5
