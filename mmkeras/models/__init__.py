"""The zoo: recipes registered by name. Importing this package registers them all."""

from mmkeras.models import captioning, documents, fashion, fusion_recipes, gan, retrieval, shared_encoder, vqa  # noqa: F401  (registers the recipes)
