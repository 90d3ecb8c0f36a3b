"""download=True against a file server on loopback, serving small IDX files the test writes."""
import functools
import http.server
import threading

import numpy as np
import pytest

from fastnn.datasets import FashionMNIST
from test_data import write_fake_mnist


@pytest.fixture
def served_folder(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join()


def test_download_fetches_missing_files_then_loads(served_folder, tmp_path, monkeypatch):
    served, url = served_folder
    images, labels = write_fake_mnist(served, 5, compress=True)
    monkeypatch.setattr(FashionMNIST, "url", url)
    root = tmp_path / "root"
    dataset = FashionMNIST(root=str(root), train=False, download=True)
    assert sorted(p.name for p in root.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    np.testing.assert_array_equal(dataset.targets, labels)
    np.testing.assert_allclose(dataset.data[:, 0], images / 255, rtol=1e-6)


def test_failed_download_leaves_no_file_that_looks_complete(served_folder, tmp_path, monkeypatch):
    _, url = served_folder  # serves nothing: every fetch is a 404
    monkeypatch.setattr(FashionMNIST, "url", url)
    root = tmp_path / "root"
    with pytest.raises(Exception, match="404"):
        FashionMNIST(root=str(root), train=False, download=True)
    assert [p.name for p in root.iterdir() if not p.name.endswith(".part")] == []
