"""The runner's build environment, as ``run.started`` records it: what code executed the run.

SLSA provenance names the builder; here that is the runner's govtrain (its code digest over every source file), the
versions of the packages that shape training and judgment, and a digest over every installed distribution's name
and version, so two runs executed in different environments can be told apart.
"""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from typing import Any

# The packages whose versions change what a run computes or how it is judged.
KEY_PACKAGES = ("govtrain", "torch", "transformers", "tokenizers", "safetensors", "datasets", "pyarrow", "numpy",
                "peft", "opacus", "fairlearn", "scikit-learn", "presidio-analyzer", "presidio-anonymizer", "spacy",
                "great-expectations", "cryptography")


def installed_packages() -> list[tuple[str, str]]:
    """Every installed distribution as (normalized name, version), sorted."""
    found = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata is not None else None
        if name:
            found.add((name.lower().replace("_", "-"), dist.version))
    return sorted(found)


def builder_environment() -> dict[str, Any]:
    """The runner's environment: govtrain's code digest, key package versions, a digest of all of them."""
    from governance.run.reports import code_digest

    packages = installed_packages()
    versions = dict(packages)
    listing = "".join(f"{name}=={version}\n" for name, version in packages)
    return {"builder": f"govtrain-runner/{versions.get('govtrain', 'unknown')}", "code_digest": code_digest(),
            "packages": {name: versions[name] for name in KEY_PACKAGES if name in versions},
            "packages_digest": hashlib.sha256(listing.encode()).hexdigest(), "installed": len(packages),
            "python": platform.python_version(), "platform": platform.platform()}
