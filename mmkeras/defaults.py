"""Defaults the command line needs before anything imports Keras (`mmkeras train --help`).

`mmkeras.train` and `mmkeras train` train `DEFAULT_MODEL` on `DEFAULT_DATASET` unless told
otherwise; `mmkeras.training` re-exports both.
"""

DEFAULT_MODEL = "vqa"
DEFAULT_DATASET = "easy_vqa"

# Accepted values the command line offers as choices, kept here once for the library and the CLI.
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
TASKS = ("binary", "multiclass", "multilabel", "regression")  # the heads own data can train
SPLIT_TASKS = TASKS + ("retrieval", "captioning")  # what a DatasetSplits trains: a head, a dual encoder, a captioner
IMAGE_STORAGES = ("auto", "memory", "disk")
