"""The zoo: recipes registered by name. Importing this package registers them all."""

from mmkeras.models import documents, fusion_recipes, retrieval, shared_encoder, vqa  # noqa: F401  (registers the recipes)
