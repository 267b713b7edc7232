"""Load official EDM network pickles (`edm-*.pkl`, `network-snapshot-*.pkl`) without running pickled code.

The official files are `torch_utils.persistence` pickles: every network class is stored as
``_reconstruct_persistent_obj(meta)`` with meta = {type: 'class', version, module_src (the whole source file of
the class), class_name, state (the object's __dict__: _parameters, _buffers, _modules, ..., _init_args,
_init_kwargs)}; tensors go through torch's rebuild functions and ``torch.storage._load_from_bytes``. A plain
``pickle.load`` imports ``torch_utils`` and *executes* module_src. We never do either:

* `RestrictedUnpickler.find_class` resolves only an allow-list of names, each to a harmless stand-in:
  persistent objects become `PersistentRecord` (class name + state, the source text is dropped unread),
  torch containers (ModuleDict/ModuleList/Sequential) become `ContainerRecord`, storages are read with
  ``torch.load(weights_only=True)``, numpy scalars are rebuilt from their bytes. Any other global (os.system,
  builtins.eval, ...) is refused with a one-line `BenchError` naming it.
* `network_from_record` rebuilds *our* class of the same name (`baselines.edm.precond.CLASS_NAMES`) from
  the recorded init kwargs and copies the collected tensors in with a strict key/shape check.

The top-level layout [R training_loop.py]: {'ema': network, 'loss_fn': loss, 'augment_pipe': pipe or None,
'dataset_kwargs': dict}; `load_network(path)` returns the EMA network ready for sampling.
"""
from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn

from bench.registry import BenchError

PERSISTENCE_VERSION = 6  # torch_utils.persistence._version of every published EDM pickle [R]


class PersistentRecord:
    """What a persistent object held: its class name and state. Nothing of its code is kept or run."""

    def __init__(self, meta: Any):
        if not isinstance(meta, dict) or meta.get("type") != "class" or "class_name" not in meta:
            raise BenchError("malformed EDM pickle: a persistent object without a class record")
        self.class_name = str(meta["class_name"])
        self.version = meta.get("version")
        self.state = dict(meta.get("state") or {})
        self.source_chars = len(meta.get("module_src") or "")  # recorded for diagnostics only, never read

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return dict(self.state.get("_init_kwargs") or {})

    @property
    def init_args(self) -> tuple[Any, ...]:
        return tuple(self.state.get("_init_args") or ())

    def __repr__(self) -> str:
        return f"PersistentRecord({self.class_name})"


class ContainerRecord:
    """Stand-in for torch.nn.ModuleDict / ModuleList / Sequential: keeps the unpickled __dict__."""

    kind = "container"

    def __setstate__(self, state: Any) -> None:
        self.state = dict(state or {})


def _container(kind: str) -> type:
    return type(f"{kind}Record", (ContainerRecord,), {"kind": kind})


def _storage_from_bytes(data: bytes) -> Any:
    """torch.storage._load_from_bytes, but through torch's weights-only unpickler."""
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise BenchError("malformed EDM pickle: numpy scalar of a non-numeric dtype")
    if data is None:
        return dtype.type(0)
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles store bytes as _codecs.encode(str, 'latin1')."""
    if encoding not in ("latin1", "latin-1"):
        raise BenchError(f"malformed EDM pickle: _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool, backward_hooks: Any, *state: Any) -> torch.Tensor:
    return nn.Parameter(data, requires_grad=False)


SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentRecord,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): dict,
    ("dnnlib", "EasyDict"): dict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("torch.nn.modules.container", "ModuleDict"): _container("ModuleDict"),
    ("torch.nn.modules.container", "ModuleList"): _container("ModuleList"),
    ("torch.nn.modules.container", "Sequential"): _container("Sequential"),
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "set"): set,  # protocol 2 writes Module._non_persistent_buffers_set this way
    ("builtins", "frozenset"): frozenset,
}
for _name in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool"):
    SAFE_GLOBALS[("torch", _name)] = getattr(torch, _name)


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles carry Python 2 names (__builtin__.set, copy_reg...): map them as pickle would.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise BenchError(f"refusing to load {module}.{name} from an EDM pickle: only network state "
                             f"(tensors, containers, persistent-class records) is allowed") from None

    def persistent_load(self, pid: Any) -> Any:
        raise BenchError("this is a torch.save file, not an EDM network pickle: load it with torch.load")


def read_pickle(source: str | Path | BinaryIO) -> Any:
    """Unpickle an EDM file into plain data + records (no code from the file runs)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise BenchError(f"EDM pickle {path} does not exist")
        with open(path, "rb") as handle:
            return read_pickle(handle)
    try:
        return RestrictedUnpickler(source).load()
    except BenchError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise BenchError(f"not a readable EDM pickle ({type(exc).__name__}: {exc})") from None


def collect_state(record: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict (dotted names) of a recorded module tree: its _parameters, _buffers and _modules."""
    if not isinstance(record, (PersistentRecord, ContainerRecord)):
        raise BenchError(f"malformed EDM pickle: {prefix or 'the network'} is a {type(record).__name__}, "
                         f"not a module record")
    state = record.state
    out: dict[str, torch.Tensor] = {}
    non_persistent = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is None or (group == "_buffers" and name in non_persistent):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise BenchError(f"malformed EDM pickle: {prefix}{name} is a {type(tensor).__name__}, not a tensor")
            out[prefix + name] = tensor.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(collect_state(child, f"{prefix}{name}."))
    return out


def network_from_record(record: Any) -> nn.Module:
    """Our network for a recorded EDM preconditioning wrapper, with the recorded weights loaded strictly."""
    from baselines.edm.precond import CLASS_NAMES
    from bench.diffusion.checkpoint import load_exact

    if not isinstance(record, PersistentRecord):
        raise BenchError(f"expected a persistent network record, got {type(record).__name__}")
    if record.version != PERSISTENCE_VERSION:
        raise BenchError(f"EDM pickle written by torch_utils.persistence version {record.version}; "
                         f"only version {PERSISTENCE_VERSION} (all published EDM files) is known")
    if record.class_name not in CLASS_NAMES:
        raise BenchError(f"EDM pickle holds a {record.class_name}; known networks: {', '.join(CLASS_NAMES)}")
    if record.init_args:
        raise BenchError(f"{record.class_name} record has positional init args; EDM passes keywords only")
    kwargs = _plain(record.init_kwargs)
    try:
        net = CLASS_NAMES[record.class_name](**kwargs)
    except TypeError as exc:
        raise BenchError(f"cannot rebuild {record.class_name} from the pickle's init kwargs: {exc}") from None
    load_exact(net, collect_state(record), f"EDM pickle ({record.class_name})")
    return net.eval().requires_grad_(False)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers, containers recursively (init kwargs are plain config)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def load_network(source: str | Path | BinaryIO, key: str = "ema") -> nn.Module:
    """The network stored under ``key`` ('ema' in every official file) as our module, eval mode."""
    data = read_pickle(source)
    if not isinstance(data, dict) or key not in data:
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise BenchError(f"EDM pickle has no {key!r} entry (found {found})")
    return network_from_record(data[key])


def loss_settings(source: str | Path | BinaryIO) -> dict[str, Any]:
    """The recorded loss class and its settings (e.g. EDMLoss P_mean/P_std/sigma_data), for provenance."""
    data = read_pickle(source)
    record = data.get("loss_fn") if isinstance(data, dict) else None
    if not isinstance(record, PersistentRecord):
        return {}
    keep = {k: _plain(v) for k, v in record.state.items()
            if not k.startswith("_") and isinstance(v, (int, float, np.generic))}
    return {"class_name": record.class_name, **keep}
