"""Input pipelines and built-in datasets.

- `make_dataset(images, texts, labels, preprocessor=...)`: arrays, image files or encoded bytes,
  plus raw strings or token ids -> a batched, shuffled, prefetched `tf.data.Dataset`.
- `Examples`: the checked, decoded, in-memory examples behind every pipeline.
- `load_dataset(name)` / `list_datasets()`: easy-VQA and Fashion-MNIST caption matching, true or
  false statements about two Fashion-MNIST photos (`fashion_pairs`), and image-text retrieval and
  captioning on both with texts generated from the labels, offline.
- `load_table(data)`: your own table of image paths, texts and labels (CSV, JSON lines, a
  DataFrame, a list of dicts) or image folder by class, as the `DatasetSplits` `train` takes.

Example:

>>> from mmkeras import data
>>> data.list_datasets()
['easy_vqa', 'easy_vqa_captions', 'easy_vqa_descriptions', 'easy_vqa_yes_no', 'fashion_mnist_captions',
 'fashion_mnist_descriptions', 'fashion_mnist_pair_captions', 'fashion_pairs']
"""

from mmkeras.data.pipeline import IMAGE_FORMS, Examples, image_form, make_dataset
from mmkeras.data.tables import TASKS, data_name, infer_labels, load_examples, load_table, read_image_folder, read_table
from mmkeras.data.datasets import (
    DatasetSplits,
    dataset_description,
    dataset_task,
    list_datasets,
    load_dataset,
    register_dataset,
    split_by_group,
)
from mmkeras.data import caption_datasets, easy_vqa, fashion_mnist, fashion_pairs, retrieval_datasets  # noqa: F401,E402  (registers the built-in datasets)

__all__ = [
    "DatasetSplits",
    "Examples",
    "TASKS",
    "data_name",
    "infer_labels",
    "load_examples",
    "load_table",
    "read_image_folder",
    "read_table",
    "IMAGE_FORMS",
    "dataset_description",
    "dataset_task",
    "image_form",
    "list_datasets",
    "load_dataset",
    "make_dataset",
    "register_dataset",
    "split_by_group",
]
