"""Writing a model: one .onnx file, or, past protobuf's 2 GiB limit, the weights beside it."""
from __future__ import annotations

from pathlib import Path

from netlang.errors import NetlangValueError

_LIMIT = 2 ** 31 - 1


def save(model, path) -> None:
    import onnx
    path = Path(path)
    external = model.ByteSize() > _LIMIT
    try:
        onnx.save_model(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
                        location=path.name + ".data")
    except OSError as e:
        raise NetlangValueError(f"cannot write {path}: {e.strerror}", None) from None
