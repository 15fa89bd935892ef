"""What a compliance officer may look at before approving: a few scrubbed rows, decrypted in memory only.

Only compliance officers and admins may sample (the command's role check), every sample is logged (how many rows
of which card, never which rows or what they say), and the rows come from the vault, so they are the scrubbed
text the model would see; nothing raw is ever shown.
"""

from __future__ import annotations

import secrets
from typing import Any

from governance.crypto import MasterKey
from governance.errors import ConfigError
from governance.gate.approvals import card_status, check_vault
from governance.gate.catalog import DatasetCatalog
from governance.gate.shards import read_vault_table
from governance.trust.session import Session

MAX_SAMPLES = 50


def sample_scrubbed_rows(session: Session, ref: str, count: int, kek: MasterKey) -> tuple[str, list[dict[str, Any]]]:
    """``count`` rows of the stored (scrubbed) table, chosen at random; logs ``data.sampled``."""
    if not 1 <= count <= MAX_SAMPLES:
        raise ConfigError(f"--samples takes 1 to {MAX_SAMPLES} rows, not {count}")
    catalog = DatasetCatalog(session.workspace)
    name, version = catalog.resolve(ref)
    card = catalog.read_card(name, version)
    card_status(session.workspace, card)  # the card must be the one the log recorded
    table = read_vault_table(check_vault(session.workspace, card), card, kek)
    picked = sorted(secrets.SystemRandom().sample(range(table.num_rows), min(count, table.num_rows)))
    rows = table.take(picked).to_pylist()
    session.record("data.sampled", {"dataset": card.ref, "card_digest": card.digest(), "rows": len(rows)})
    return card.ref, rows
