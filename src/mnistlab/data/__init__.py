"""The data stage: MNIST and Fashion-MNIST, found or downloaded, always verified.

Read `datasets.py` first: `load(name)` finds the four IDX files (a folder you
name, `$MNISTLAB_DATA_DIR`, the cache, a system package) or downloads them,
and checks every byte before returning uint8 arrays.

- `sources.py`: the data sets mnistlab knows (`DATASETS`, `DatasetSpec`) and the cache folder
- `idx.py`: reading, checking and writing IDX files
- `download.py`: mirrors in order, verified, moved into place only when whole
- `splits.py`: the validation split, the offline shift augmentation

    >>> from mnistlab import data
    >>> ds = data.load("mnist")
    >>> x_tr, y_tr, x_val, y_val = data.split_validation(ds.x_train, ds.y_train, 0.1, seed=0)
"""

from mnistlab.data.datasets import load, load_folder
from mnistlab.data.idx import ROLES, check_array, idx_bytes, parse_idx, read_file_bytes, read_idx
from mnistlab.data.sources import DATASETS, Dataset, DatasetSpec, cache_dir, spec
from mnistlab.data.splits import shift_augment, split_validation

__all__ = ["load", "load_folder", "split_validation", "shift_augment", "Dataset", "DatasetSpec", "DATASETS",
           "spec", "cache_dir", "ROLES", "read_idx", "parse_idx", "check_array", "idx_bytes", "read_file_bytes"]
