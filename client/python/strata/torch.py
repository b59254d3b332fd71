"""PyTorch integration: JoinDataset streams a point-in-time join batch by batch as tensors,
sharded across DataLoader workers (worker w of W takes batches w, w+W, ...).

    ds = strata.torch.JoinDataset(client, "user_profile", samples, ["age", "emb"],
                                  batch_size=1024, columns=["label"])
    for batch in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2):
        batch["age"], batch["emb"], batch["label"]  # tensors of up to 1024 rows

Each batch is a dict: one tensor per numeric feature (int64 for i64 with absent values as
`fill_int` and a bool "<feature>_found" mask next to it; float32/float64 with NaN for absent;
f32[N] as an (n, N) float32 tensor with NaN rows for absent), lists for str/bytes/i64[]
features, and the requested sample `columns` as tensors. Workers open their own connection
(a network client's address and token are reused); an embedded store can be opened by one
process only, so with an embedded client use num_workers=0."""
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .errors import InvalidArgument


class JoinDataset(IterableDataset):
    def __init__(self, client, table, samples, features, batch_size=1024, entity_column=None,
                 ts_column="ts", known_at=None, columns=(), ts_unit=None, fill_int=0,
                 drop_last=False):
        super().__init__()
        if batch_size <= 0:
            raise InvalidArgument("JoinDataset: batch_size must be positive")
        for c in columns:
            if c not in samples.columns:
                raise InvalidArgument(f"JoinDataset: samples have no column '{c}'")
        self.client, self.table, self.samples = client, table, samples
        self.features = [features] if isinstance(features, str) else list(features)
        self.batch_size, self.drop_last = int(batch_size), drop_last
        self.kw = dict(entity_column=entity_column, ts_column=ts_column, known_at=known_at,
                       ts_unit=ts_unit)
        self.columns, self.fill_int = list(columns), fill_int

    def __len__(self):
        n = len(self.samples)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _worker_client(self, info):
        if info is None:
            return self.client, False
        spec = self.client._spec
        if spec[0] != "server":
            raise InvalidArgument("JoinDataset: an embedded store can be opened by one "
                                  "process only; use num_workers=0 or a stratad server")
        from . import connect
        return connect(spec[1], token=spec[2], timeout=spec[3], connect_timeout=spec[4],
                       allow_any_ts=self.client._any_ts), True

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        client, own = self._worker_client(info)
        try:
            for b in range(wid, len(self), nw):
                yield self._batch(client, self.samples.iloc[b * self.batch_size:
                                                            (b + 1) * self.batch_size])
        finally:
            if own:
                client.close()

    def _batch(self, client, part):
        out = {}
        for tname, names, outs in client._join_outputs(
                self.table, part, self.features, self.kw["entity_column"],
                self.kw["ts_column"], self.kw["known_at"], False, self.kw["ts_unit"], 0):
            for f, o in zip(names, outs):
                key = f if tname == self.table and f in self.features else f"{tname}:{f}"
                out.update(_tensors(key, o, self.fill_int))
        for c in self.columns:
            out[c] = torch.as_tensor(np.asarray(part[c].to_numpy()))
        return out


def _tensors(name, o, fill_int):
    if o.kind == "i":
        data = o.data.copy()
        data[~o.found] = fill_int
        return {name: torch.from_numpy(data), name + "_found": torch.from_numpy(o.found)}
    if o.kind in "dfv":
        return {name: torch.from_numpy(o.data)}
    return {name: list(o.objects)}
