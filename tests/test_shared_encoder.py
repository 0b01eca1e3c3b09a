"""The shared-encoder model (document 004, algorithm 1): its stems, its fusion and its recipe.

The registry-wide checks (build, fit, config and `.keras` round trips, export) cover the recipe in
tests/test_zoo.py and tests/test_export.py, and the fusion's formula is checked against numpy in
tests/test_fusion.py; here: what the stems compute, that padding is masked all the way from the
token ids to the answer (also after a `.keras` round trip), and the recipe's documented shape.
"""

import os

import keras
import numpy as np
import pytest
from keras import ops

import mmkeras
from mmkeras.encoders.image import patch_encoder
from mmkeras.encoders.text import embedding_encoder
from mmkeras.fusion import FUSIONS, SharedTransformerFusion, get_fusion
from tests.helpers import tiny_model

RNG = np.random.default_rng(0)


def _np(variable):
    return ops.convert_to_numpy(variable)


def test_patch_encoder_embeds_each_patch_in_row_major_order_plus_its_position():
    encoder = patch_encoder((8, 12, 3), patch_size=4, embedding_dim=5)
    assert encoder.output_shape == (None, 6, 5)
    images = RNG.random((2, 8, 12, 3), dtype=np.float32)
    kernel = _np(encoder.get_layer("image_patch_embedding").kernel).reshape(4 * 4 * 3, 5)
    bias = _np(encoder.get_layer("image_patch_embedding").bias)
    positions = _np(encoder.get_layer("image_position_embedding").positions)
    patches = images.reshape(2, 2, 4, 3, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(2, 6, 4 * 4 * 3)
    np.testing.assert_allclose(_np(encoder(images)), patches @ kernel + bias + positions, atol=1e-5)


def test_patch_encoder_refuses_a_patch_size_that_does_not_divide_the_image():
    with pytest.raises(ValueError, match=r"`patch_size` must divide the image's height and width \(32x32\).*Received: patch_size=5$"):
        patch_encoder((32, 32, 3), patch_size=5)
    with pytest.raises(ValueError, match="Received: patch_size=0"):
        patch_encoder((32, 32, 3), patch_size=0)


def test_patch_encoder_stem_halves_the_resolution_per_block_and_tokens_still_cover_patch_size_pixels():
    encoder = patch_encoder((32, 32, 3), patch_size=8, embedding_dim=6, stem_filters=(4, 8))
    assert encoder.output_shape == (None, 16, 6)
    assert encoder.get_layer("image_stem2_pool").output.shape == (None, 8, 8, 8)
    assert encoder.get_layer("image_patch_embedding").kernel_size == (2, 2)  # 2x2 cells of the 8x8 map
    with pytest.raises(ValueError, match=r"`patch_size` must be a multiple of 8: the 3 blocks of .*Received: patch_size=4$"):
        patch_encoder((32, 32, 3), patch_size=4, stem_filters=(4, 4, 4))


def test_embedding_encoder_gives_token_plus_position_embeddings_and_masks_padding():
    encoder = embedding_encoder(sequence_length=5, vocab_size=20, embedding_dim=4)
    ids = np.array([[3, 7, 0, 0, 0], [1, 2, 3, 4, 5]], "int32")
    out = encoder(ids)
    layer = encoder.get_layer("text_embedding")
    expected = _np(layer.token_embedding.embeddings)[ids] + _np(layer.position_embedding.embeddings)
    np.testing.assert_allclose(_np(out), expected, atol=1e-6)
    np.testing.assert_array_equal(_np(out._keras_mask), ids != 0)


def _fusion_and_inputs(n=3, length=6):
    fusion = SharedTransformerFusion(units=8, num_heads=2, num_layers=2)
    patches = RNG.normal(size=(n, 4, 5)).astype("float32")
    words = RNG.normal(size=(n, length, 3)).astype("float32")
    mask = np.arange(length)[None, :] < np.array([[2], [length], [4]])[:n]  # 2, all, 4 tokens kept
    return fusion, patches, words, mask


def test_shared_transformer_ignores_masked_tokens_and_reads_the_others():
    fusion, patches, words, mask = _fusion_and_inputs()
    out = _np(fusion([patches, words], mask=[None, mask]))
    changed = np.where(mask[..., None], words, RNG.normal(size=words.shape).astype("float32"))
    np.testing.assert_allclose(_np(fusion([patches, changed], mask=[None, mask])), out, atol=1e-6)
    # The mask is what keeps them out: unmasked, the same change moves the rows that have padding.
    unmasked = np.abs(_np(fusion([patches, changed])) - _np(fusion([patches, words]))).max(-1)
    assert unmasked[0] > 1e-3 and unmasked[2] > 1e-3 and unmasked[1] == 0
    # A kept token does count.
    other = words.copy()
    other[:, 0] += 1.0
    assert np.abs(_np(fusion([patches, other], mask=[None, mask])) - out).max() > 1e-3


def test_shared_transformer_reads_a_vector_as_a_sequence_of_one_token():
    fusion = get_fusion("shared_transformer", units=6, num_heads=3)
    a, b = RNG.normal(size=(4, 3)).astype("float32"), RNG.normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(_np(fusion([a, b])), _np(fusion([a[:, None], b[:, None]])), atol=1e-6)
    assert tuple(fusion([a[:, None].repeat(3, 1), b]).shape) == (4, 6)  # a sequence beside a vector


@pytest.mark.parametrize(
    "kwargs, inputs, match",
    [
        ({"units": 6, "num_heads": 4}, None, r"`units` must be divisible by `num_heads` \(4\)\. Received: units=6$"),
        ({"num_heads": 2}, [(2, 3), (2, 4)], r"the first modality's width \(3\).*Received: num_heads=2$"),
        ({"num_layers": 0}, None, "Received: num_layers=0$"),
        ({"intermediate_dim": -1}, None, "Received: intermediate_dim=-1$"),
        ({"dropout": 1.0}, None, "Received: dropout=1.0$"),
        ({"units": 4}, [(2, 3, 4, 5), (2, 4)], r"vectors \(batch, width\) or sequences \(batch, length, width\)"),
    ],
)
def test_shared_transformer_refuses_bad_arguments(kwargs, inputs, match):
    with pytest.raises(ValueError, match=match):
        fusion = get_fusion("shared_transformer", **kwargs)
        fusion([np.ones(shape, "float32") for shape in inputs])


@pytest.mark.parametrize("kind", sorted(set(FUSIONS) - {"shared_transformer"}))
def test_fusions_of_vectors_name_the_one_that_reads_sequences(kind):
    with pytest.raises(ValueError, match="for sequences use the 'shared_transformer' fusion"):
        get_fusion(kind, **({"units": 4, "rank": 2} if kind == "low_rank_tensor" else {"units": 4}))(
            [np.ones((2, 5, 3), "float32"), np.ones((2, 4), "float32")]
        )


def _padding_moves_output(model, ids, images):
    """The largest change of the output when the embedding of token id 0 (padding) changes."""
    embedding = model.get_layer("text_encoder").get_layer("text_embedding").token_embedding
    table = _np(embedding.embeddings)
    outputs = []
    for scale in (0.0, 5.0):
        table[0] = np.linspace(-1, 1, table.shape[1]) * scale
        embedding.embeddings.assign(table)
        outputs.append(model.predict({"image": images, "text": ids}, verbose=0))
    return float(np.abs(outputs[1] - outputs[0]).max())


def test_the_model_masks_padding_from_token_ids_to_answer_also_after_saving(tmp_path):
    model = tiny_model("shared_encoder", compile=False)
    length = model.input["text"].shape[1]
    ids = RNG.integers(2, 50, size=(3, length)).astype("int32")
    ids[0, 3:], ids[1, 1:] = 0, 0  # two texts end in padding
    images = RNG.random((3, *model.input["image"].shape[1:]), dtype=np.float32)
    assert _padding_moves_output(model, ids, images) == 0
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert _padding_moves_output(loaded, ids, images) == 0
    # Control: the embedding of a token that is there does move the output.
    ids[2, :] = 5
    embedding = loaded.get_layer("text_encoder").get_layer("text_embedding").token_embedding
    before = loaded.predict({"image": images, "text": ids}, verbose=0)
    table = _np(embedding.embeddings)
    table[5] += 1.0
    embedding.embeddings.assign(table)
    assert np.abs(loaded.predict({"image": images, "text": ids}, verbose=0) - before).max() > 1e-4


def test_the_recipe_is_patches_and_tokens_into_one_shared_transformer():
    entry = mmkeras.get_entry("shared_encoder")
    assert entry.family == "documents" and "document 004, algorithm 1" in entry.reference
    model = mmkeras.get_model("shared_encoder", compile=False)
    image = model.get_layer("image_encoder")
    assert image.output_shape == (None, 16, 64)  # 4x4 patches of 8x8 pixels
    assert [image.get_layer(f"image_stem{i}_conv").filters for i in (1, 2, 3)] == [16, 32, 64]
    assert model.get_layer("text_encoder").output_shape == (None, 9, 64)
    fusion = model.get_layer("fusion")
    assert isinstance(fusion, SharedTransformerFusion)
    assert (fusion.width, fusion.num_heads, len(fusion.blocks)) == (64, 4, 2)
    assert model.output_names == ["answer"] and model.head.num_classes == 13
    assert model.count_params() == 114_365  # pinned: an accidental architecture change fails here
    assert entry.training_defaults("easy_vqa")["image_shape"] == (32, 32, 3)


def test_every_fusion_kind_has_its_fusion_recipe():
    entry = mmkeras.get_entry("fusion_shared_transformer")
    assert entry.family == "fusion" and entry.reference.startswith("Shared-encoder fusion")
    model = tiny_model("fusion_shared_transformer", compile=False)
    assert isinstance(model.get_layer("fusion"), SharedTransformerFusion)


@pytest.mark.slow
def test_the_recipe_reaches_its_goal_on_easy_vqa():
    """docs/models.md's figure, at full size with the recipe's easy-VQA defaults (minutes on 2 CPU cores)."""
    result = mmkeras.train("shared_encoder", "easy_vqa", output=False, export=False, verbose=0)
    assert result.metrics["examples"]["test"] == 9673
    assert result.metrics["test_accuracy"] >= 0.999, result.metrics["test_accuracy"]
