"""Read an MDS split with mosaicml-streaming's own readers and print each sample as a
JSON line (run inside the reader environment of tests/reader_envs.py).

usage: read_mds.py DEST SPLIT (streaming|local)

`streaming`'s package __init__ imports its vision datasets, hence torchvision, whose PyPI
build needs a CUDA torch; these machines have the CPU build. So the package is entered
without running that __init__: `streaming.base`, where StreamingDataset and LocalDataset
live, does not use torchvision.
"""

import importlib.util
import json
import sys
import types

spec = importlib.util.find_spec("streaming")
package = types.ModuleType("streaming")
package.__path__ = list(spec.submodule_search_locations)
sys.modules["streaming"] = package

from streaming.base import LocalDataset, StreamingDataset  # noqa: E402

dest, split, reader = sys.argv[1:4]
if reader == "streaming":
    dataset = StreamingDataset(local=dest, split=split, shuffle=False, batch_size=1)
else:
    dataset = LocalDataset(local=dest, split=split)
for index in range(len(dataset)):
    sample = dataset[index]
    row = {}
    for name, value in sample.items():
        if hasattr(value, "dtype") and value.ndim:
            row[name] = {"dtype": str(value.dtype), "values": value.tolist()}
        else:
            row[name] = int(value)
    print(json.dumps(row))
