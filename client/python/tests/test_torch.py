"""strata.torch.JoinDataset: batches of tensors, equal to join(), sharded across workers."""
import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
import strata  # noqa: E402
import strata.torch  # noqa: E402

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def _setup(client, tname, n=1000):
    client.create_table(tname, {"age": "i64", "ctr": "f32", "emb": "f32[3]", "name": "str"})
    rng = np.random.default_rng(3)
    client.put_df(tname, pd.DataFrame({
        "entity": [f"e{i}" for i in range(50)], "ts": T0,
        "age": pd.array([None if i % 5 == 0 else i for i in range(50)], dtype="Int64"),
        "ctr": rng.random(50).astype(np.float32),
        "emb": list(rng.random((50, 3)).astype(np.float32)),
        "name": [f"n{i}" for i in range(50)]}))
    return pd.DataFrame({"entity": [f"e{i % 60}" for i in range(n)],
                         "ts": T0 + pd.to_timedelta(np.arange(n) % 3 - 1, unit="s"),
                         "label": np.arange(n, dtype=np.float32)})


def _check(batches, client, tname, samples):
    want = client.join(tname, samples, ["age", "ctr", "emb"], embeddings="wide")
    got = {}
    for b in batches:
        assert b["age"].dtype == torch.int64 and b["emb"].dtype == torch.float32
        for i, label in enumerate(b["label"].tolist()):
            assert int(label) not in got, f"row {int(label)} came twice"  # sharded, not copied
            got[int(label)] = (b["age"][i].item(), b["age_found"][i].item(),
                               b["ctr"][i].item(), b["emb"][i].tolist())
    assert sorted(got) == list(range(len(samples)))
    for r in range(len(samples)):
        age, found, ctr, emb = got[r]
        w = want.iloc[r]
        assert found == (not pd.isna(w["age"])) and age == (0 if pd.isna(w["age"]) else w["age"])
        assert np.allclose([ctr] + emb, [w["ctr"], w["emb_0"], w["emb_1"], w["emb_2"]],
                           equal_nan=True)


def test_join_dataset_in_process(client, tname):
    samples = _setup(client, tname)
    ds = strata.torch.JoinDataset(client, tname, samples, ["age", "ctr", "emb", "name"],
                                  batch_size=128, columns=["label"])
    assert len(ds) == 8
    batches = list(torch.utils.data.DataLoader(ds, batch_size=None))
    assert len(batches) == 8 and len(batches[0]["name"]) == 128
    _check(batches, client, tname, samples)


def test_join_dataset_workers(server, tname):
    with strata.connect(server.addr) as client:
        samples = _setup(client, tname)
        ds = strata.torch.JoinDataset(client, tname, samples, ["age", "ctr", "emb"],
                                      batch_size=100, columns=["label"])
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
        batches = list(loader)
        assert len(batches) == len(ds) == 10
        _check(batches, client, tname, samples)


def test_join_dataset_embedded_workers_refused(tmp_path, tname):
    with strata.open(str(tmp_path / "d")) as client:
        samples = _setup(client, tname, n=10)
        ds = strata.torch.JoinDataset(client, tname, samples, ["age"], batch_size=5)
        with pytest.raises(Exception, match="one process"):
            list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=1))
