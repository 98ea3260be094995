"""Data: the sets and their loading (sets.py), the in-memory training pipeline (pipeline.py), batch augmentation
(augment.py).

    from labkit.data import load_data
    data = load_data(config.data, seed=0)    # train / val / test tensors in memory
"""
from .sets import (CIFAR, CIFAR_TRAIN_SIZE, DATASETS, PREPROCESS, Data, DataFactory, Stats, cache_dir, check_subset,
                   data_dirs, default_subset, describe, download_cifar, ensure_available, find_cifar, image_stats,
                   is_image, load_cifar_arrays, load_data, split_train, stratified_indices, train_size_of)

__all__ = ["CIFAR", "CIFAR_TRAIN_SIZE", "DATASETS", "PREPROCESS", "Data", "DataFactory", "Stats", "cache_dir",
           "check_subset", "data_dirs", "default_subset", "describe", "download_cifar", "ensure_available",
           "find_cifar", "image_stats", "is_image", "load_cifar_arrays", "load_data", "split_train",
           "stratified_indices", "train_size_of"]
