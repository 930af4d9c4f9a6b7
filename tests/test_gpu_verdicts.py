"""The stack side of the GPU verdicts: which stacks wait on the GPU, on data, or on other ranks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gradetop.model.gpu_verdicts import classify

LINES = {
    ("/job/train.py", 10): "loss_value = loss.item()",
    ("/job/train.py", 11): "preds = logits.argmax(-1).cpu()",
    ("/job/train.py", 12): "torch.cuda.synchronize()",
    ("/job/train.py", 13): "batch = next(it)",
    ("/job/train.py", 14): "x = model(batch)",
    ("/job/train.py", 15): "dist.all_reduce(grad)",
    ("/job/train.py", 16): "values = out.tolist()",
}


def frames(*spec):
    return [SimpleNamespace(function=f, file=file, line=line) for f, file, line in spec]


def line_of(file, line):
    return LINES.get((file, line), "")


@pytest.mark.parametrize("line, where", [
    (10, "`loss_value = loss.item()` at"), (11, "`preds = logits.argmax(-1).cpu()` at"),
    (12, "`torch.cuda.synchronize()` at"), (16, "`values = out.tolist()` at"),
])
def test_a_synchronising_line_is_sync_and_named(line, where):
    kind, at = classify(frames(("main", "/job/train.py", line)), line_of)
    assert kind == "sync" and at.startswith(where) and at.endswith(f"train.py:{line}")


def test_native_cuda_sync_frames_are_sync_and_name_the_python_line():
    stack = frames(("main", "/job/train.py", 14), ("at::_local_scalar_dense", "libtorch_cuda.so", 0),
                   ("cudaStreamSynchronize", "libcudart.so.12", 0))
    kind, at = classify(stack, line_of)
    assert kind == "sync" and "`x = model(batch)` at" in at


def test_torch_cuda_synchronize_frame_is_sync():
    stack = frames(("main", "/job/train.py", 14),
                   ("synchronize", "/venv/lib/python3.11/site-packages/torch/cuda/__init__.py", 801))
    assert classify(stack, line_of)[0] == "sync"


def test_dataloader_and_queue_waits_are_input():
    loader = frames(("main", "/job/train.py", 13),
                    ("_MultiProcessingDataLoaderIter._next_data", "/site-packages/torch/utils/data/dataloader.py", 1300),
                    ("_MultiProcessingDataLoaderIter._get_data", "/site-packages/torch/utils/data/dataloader.py", 1250),
                    ("_MultiProcessingDataLoaderIter._try_get_data", "/site-packages/torch/utils/data/dataloader.py", 1100))
    kind, at = classify(loader, line_of)
    assert kind == "input" and at.startswith("DataLoader wait")
    queue = frames(("main", "/job/train.py", 13), ("Queue.get", "/usr/lib/python3.11/queue.py", 171),
                   ("Condition.wait", "/usr/lib/python3.11/threading.py", 320))
    assert classify(queue, line_of) == ("input", "queue.get (main at train.py:13)")


def test_collectives_are_communication():
    stack = frames(("main", "/job/train.py", 15),
                   ("all_reduce", "/site-packages/torch/distributed/distributed_c10d.py", 2050))
    assert classify(stack, line_of)[0] == "comm"


def test_running_python_and_stackless_samples_are_neither():
    assert classify(frames(("main", "/job/train.py", 14)), line_of) == (None, "")
    assert classify([], line_of) == (None, "")
