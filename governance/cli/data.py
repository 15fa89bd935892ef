"""``govtrain data ...``: the data gate (ingest, cards, approvals)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from governance.cli.app import AppContext, cli, ledger_of, pass_app

if TYPE_CHECKING:
    from governance.gate.review import ReviewDraw

# --- data -----------------------------------------------------------------------------------------------


@cli.group()
def data() -> None:
    """Ingest, inspect and approve datasets (the data gate)."""


@data.command("ingest")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--name", required=True, help="Dataset name (lowercase letters, digits, '.', '_', '-').")
@click.option("--spec", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Dataset spec YAML.")
@click.option("--policy", "policy_ref", default="default", show_default=True,
              help="A registered policy's name, or a file whose exact content an admin registered.")
@click.option("--workers", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Ray workers (actors) for the PII scrub; with --engine auto, Ray is used only for 2 or more "
                   "workers on enough rows.")
@click.option("--engine", type=click.Choice(["auto", "local", "ray"]), default="auto", show_default=True,
              help="Where the PII scrub runs: in this process (local), on Ray (a local Ray started and stopped by "
                   "the command, or --ray-address), or chosen by rows and workers (auto).")
@click.option("--ray-address", envvar="RAY_ADDRESS", default=None, metavar="ADDRESS",
              help="Run the PII scrub on this existing Ray cluster (env RAY_ADDRESS); workers see raw text, never "
                   "the master key.")
@click.option("--shard-rows", type=click.IntRange(1, None), default=None, metavar="N",
              help="Most rows per encrypted vault shard [default: 100,000].")
@click.option("--force", is_flag=True, help="Make a new version even if one holds the same content and policy.")
@pass_app
def data_ingest(app: AppContext, file: Path, name: str, spec: Path, policy_ref: str, workers: int, engine: str,
                ray_address: str | None, shard_rows: int | None, force: bool) -> None:
    """Validate, scrub PII, encrypt and card FILE (engineer or compliance).

    Steps, streamed in record batches so memory does not grow with the file: load, validate
    (great-expectations on statistics merged over the batches; exit 3 on failure; the distinct values of
    sensitive columns are scanned for PII, exit 4 unless the policy allows it), scrub PII in the text
    columns (presidio with a spaCy NER model, in process or on Ray; exit 4 if residual PII exceeds the
    policy's tolerance), encrypt into the vault as Parquet shards under a manifest the card signs, write the
    dataset card. Each step is logged. On any failure nothing is stored.
    """
    from governance.crypto.keyring import workspace_master_key
    from governance.gate.catalog import check_dataset_name
    from governance.gate.ingest import ingest_dataset
    from governance.gate.spec import load_dataset_spec
    from governance.trust.policy_registry import resolve_policy
    from governance.trust.session import open_session

    check_dataset_name(name)
    dataset_spec = load_dataset_spec(spec)
    from governance.gate.loading import check_input_file
    from governance.gate.shards import SHARD_ROWS

    workspace = app.find_workspace()
    loaded_policy = resolve_policy(workspace, policy_ref).policy  # only registered policies (exit 4)
    check_input_file(file, max_mib=loaded_policy.validation.max_input_mib)  # a regular file within the cap
    kek = workspace_master_key(workspace)
    with open_session(workspace, app.identity, ["engineer", "compliance"], "data ingest") as session:
        result = ingest_dataset(session, file, name, dataset_spec, loaded_policy, kek, workers=workers,
                                progress=app.progress, force=force, engine=engine,  # type: ignore[arg-type]
                                ray_address=ray_address or None, shard_rows=shard_rows or SHARD_ROWS)
    card = result.card
    pii = sum(card.pii.findings_by_entity.values())  # counts only
    app.emit(
        {"dataset": card.ref, "card_digest": card.digest(), "rows": card.rows.stored, "pii_findings_removed": pii,
         "card": str(result.card_path), "status": "pending"},
        f"ingested {card.ref}: {card.rows.stored:,} rows, {pii:,} PII findings removed, "
        f"card sha256:{card.digest()[:12]}\nstatus: pending approval "
        f"(read it: govtrain data show {card.ref}; approve: govtrain data approve {card.ref})",
    )


@data.command("list")
@pass_app
def data_list(app: AppContext) -> None:
    """List datasets: name, version, rows, status (pending/approved/rejected), approvers.

    Each card is judged under the registered policy its logged ingest names, from the verified audit log.
    """
    from governance.gate.approvals import card_status
    from governance.gate.catalog import DatasetCatalog

    workspace = app.find_workspace()
    ledger = ledger_of(workspace)
    catalog = DatasetCatalog(workspace)
    rows: list[dict[str, Any]] = []
    for name in catalog.names():
        for version in catalog.versions(name):
            card = catalog.read_card(name, version)
            status = card_status(workspace, card, ledger)
            rows.append({"dataset": card.ref, "rows": card.rows.stored, "status": status.status,
                         "approvers": [d.name for d in status.counted], "policy": card.policy.name,
                         "self_approved": status.self_approved,
                         "ingested_by": card.ingestion.identity, "ingested_at": card.ingestion.time})
    text = "\n".join(
        f"{r['dataset']:<24} {r['rows']:>9,} rows  {r['status']:<9} {','.join(r['approvers']) or '-':<20} "
        f"policy {r['policy']}" + ("  (self-approved: the registered policy allows it)" if r["self_approved"] else "")
        for r in rows
    ) or "no datasets yet (govtrain data ingest FILE --name NAME --spec SPEC)"
    app.emit({"datasets": rows}, text)


@data.command("show")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--samples", type=int, metavar="K",
              help="Also show K random rows of the stored, scrubbed data (compliance or admin; logged; needs the "
                   "master key; decrypted in memory only).")
@pass_app
def data_show(app: AppContext, ref: str, fmt: str, samples: int | None) -> None:
    """Show a dataset card as Markdown (a Hugging Face dataset card) or JSON (the signed source of truth).

    The Markdown also shows the latest logged review of the scrubbed rows ('govtrain data review'), read from the
    audit log: the only figure measured on the dataset itself.
    """
    from datacards.render import render_markdown
    from governance.gate.approvals import card_status
    from governance.gate.catalog import DatasetCatalog
    from governance.gate.review import card_reviews

    if samples is not None:
        _show_samples(app, ref, samples)
        return
    workspace = app.find_workspace()
    catalog = DatasetCatalog(workspace)
    name, version = catalog.resolve(ref)
    card = catalog.read_card(name, version)
    ledger = ledger_of(workspace)
    status = card_status(workspace, card, ledger)  # the card and its decision files must be what the log recorded
    if fmt == "json" or app.json:
        click.echo(json.dumps(json.loads(card.canonical_json()), indent=2, sort_keys=True))
    else:
        reviews = card_reviews(ledger, status.ingest, status.policy, card.rows.stored)
        click.echo(render_markdown(card, catalog.decisions(name, version), reviews))


@data.command("review")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--sample", type=click.IntRange(1, 10_000), default=None, metavar="K",
              help="Rows to review [default: the policy's pii.review.sample, raised to the fewest rows that can meet "
                   "its bound; 100 without one].")
@click.option("--answers", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="A scripted review: one whole number of remaining identifiers per line, one line per row shown.")
@pass_app
def data_review(app: AppContext, ref: str, sample: int | None, answers: Path | None) -> None:
    """Review K random scrubbed rows yourself and sign what remains (compliance or admin; needs the master key).

    Draws K random stored rows (a fresh seed from the OS), decrypts them in memory, shows each row's text columns
    and asks how many identifiers remain in it (names, handles, e-mail addresses, phone or account numbers:
    anything that points to a person; placeholders such as <PERSON> are not identifiers). The signed
    data.reviewed entry holds K, the rows with a remaining identifier, the identifiers, the seed, a digest of the
    row numbers and the one-sided 95% Clopper-Pearson upper bound per 100 rows; never the text. Under a policy
    with pii.review, approval waits for a review within its bound.
    """
    from governance.crypto.keyring import workspace_master_key
    from governance.gate.approvals import draw_review
    from governance.gate.review import check_answer_count, load_answers, sign_review, tally_review
    from governance.trust.session import open_session

    scripted = load_answers(answers) if answers is not None else None  # a malformed file fails before any row
    workspace = app.find_workspace()
    kek = workspace_master_key(workspace)
    with open_session(workspace, app.identity, ["compliance", "admin"], "data review") as session:
        draw = draw_review(session, ref, sample, kek)
        if scripted is not None:
            check_answer_count(draw, len(scripted))  # before any row is shown
        marked = _ask_reviewer(app, draw, scripted)
        if scripted is None:  # a person typed the answers: let them check before signing
            summary = tally_review(draw, marked)
            click.confirm(f"sign this review: an identifier in {summary.rows_with_identifier} of {summary.sample} "
                          f"rows ({summary.identifiers} in all), at most {summary.upper_per_100:.2f} per 100 rows?",
                          default=True, abort=True, err=app.json)
        result = sign_review(session, draw, marked)
        by = session.actor.name if session.actor is not None else "?"
    verdict = {None: "", True: "; within the policy's pii.review", False: "; NOT within the policy's pii.review"}
    app.emit(
        {**result.to_payload(), "within_policy": result.within_policy, "by": by},
        f"reviewed {draw.dataset} as {by}: an identifier in "
        f"{result.rows_with_identifier} of {result.sample} random rows ({result.identifiers} in all); at most "
        f"{result.upper_per_100:.2f} rows per 100 hold one (95% upper bound){verdict[result.within_policy]}\n"
        f"signed as data.reviewed (seed {draw.seed[:12]}..., rows sha256:{draw.rows_digest[:12]}...)",
    )


def _ask_reviewer(app: AppContext, draw: ReviewDraw, scripted: tuple[int, ...] | None) -> list[int]:
    """Show each drawn row's text columns and take the reviewer's count of remaining identifiers (or the scripted
    answers, shown beside the rows); the rows go to stderr under --json, so stdout stays one JSON object."""
    from governance.gate.review import MAX_IDENTIFIERS_PER_ROW

    err = app.json
    click.echo(f"reviewing {len(draw.rows)} random stored row(s) of {draw.dataset} ({draw.rows_stored:,} stored). "
               "For each, the number of identifiers that remain (names, handles, e-mail addresses, phone or account "
               "numbers; placeholders such as <PERSON> are not identifiers); Enter for 0.", err=err)
    for note in draw.notes():
        click.echo(f"note: {note}", err=err)
    marked: list[int] = []
    for index, row in enumerate(draw.rows):
        click.echo(f"--- row {index + 1} of {len(draw.rows)} ---", err=err)
        for column, text in row.texts.items():
            click.echo(f"{column}: {_printable(text) if text is not None else '(empty)'}", err=err)
        if scripted is not None:
            marked.append(scripted[index])
            click.echo(f"identifiers remaining: {scripted[index]}", err=err)
        else:
            marked.append(click.prompt("identifiers remaining", default=0, err=err,
                                       type=click.IntRange(0, MAX_IDENTIFIERS_PER_ROW)))
    return marked


def _printable(text: str) -> str:
    """The text with control characters escaped, so a stored row cannot move the cursor or rewrite the screen."""
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


@data.command("approve")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--note", default="", help="A note stored with the approval.")
@pass_app
def data_approve(app: AppContext, ref: str, note: str) -> None:
    """Approve a dataset card's digest (compliance; a signed entry in the audit log).

    Counts only under the registered policy the card was ingested under: its approver roles, quorum and
    self-approval rule. Changing one byte of the card or data voids the approval. Before signing, the card's PII
    recall and residual claims are recomputed (exit 5 if they are not what govtrain computes), and this process
    decrypts a random sample of the stored rows (the policy's approval.review_sample; needs the master key) and
    re-scans their text for PII: above the policy's bound it refuses (exit 4, counts by type, never values). The
    sample's size, seed and findings go into the signed entry. Under a policy with pii.review it also waits for a
    logged 'data review' of enough rows within the policy's bound, and refuses while any review is above it (exit 4).
    """
    _decide(app, ref, "approved", note)


@data.command("reject")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--reason", required=True, help="Why the dataset is rejected.")
@pass_app
def data_reject(app: AppContext, ref: str, reason: str) -> None:
    """Reject a dataset card (compliance; logged); it voids earlier approvals."""
    _decide(app, ref, "rejected", reason)


def _decide(app: AppContext, ref: str, decision: str, note: str) -> None:
    from governance.crypto.keyring import workspace_master_key
    from governance.gate.approvals import decide
    from governance.gate.catalog import DatasetCatalog
    from governance.trust.session import open_session

    workspace = app.find_workspace()
    name, version = DatasetCatalog(workspace).resolve(ref)
    action = "data approve" if decision == "approved" else "data reject"
    with open_session(workspace, app.identity, ["compliance", "admin"], action) as session:
        kek = workspace_master_key(workspace) if decision == "approved" else None  # the look decrypts rows
        outcome = decide(session, f"{name}@{version}", decision, note, kek)  # type: ignore[arg-type]
    signed, status, review = outcome.signed, outcome.status, outcome.review
    looked = ""
    if review is not None:
        found = ", ".join(f"{entity} {count}" for entity, count in review.findings.items() if count) or "none"
        looked = (f"\nlooked at {len(review.rows):,} random stored row(s) of {review.rows_stored:,} "
                  f"({review.texts:,} texts): PII findings {found} (at most {review.limit} allowed)")
    app.emit(
        {"dataset": f"{name}@{version}", "decision": decision, "status": status.status,
         "approvals": len(status.counted), "quorum": status.quorum, "card_digest": signed.card_digest,
         **({"review": review.to_payload()} if review is not None else {})},
        f"{decision} {name}@{version} as {signed.by_name} (card sha256:{signed.card_digest[:12]}); "
        f"status: {status.status} ({len(status.counted)} of {status.quorum} approval(s)){looked}",
    )


def _show_samples(app: AppContext, ref: str, count: int) -> None:
    from governance.crypto.keyring import workspace_master_key
    from governance.gate.samples import sample_scrubbed_rows
    from governance.trust.session import open_session

    workspace = app.find_workspace()
    kek = workspace_master_key(workspace)
    with open_session(workspace, app.identity, ["compliance", "admin"], "data show --samples") as session:
        dataset, rows = sample_scrubbed_rows(session, ref, count, kek)
    text = "\n".join(f"--- row {i + 1} of {len(rows)} (scrubbed) ---\n" + "\n".join(f"{k}: {v}" for k, v in row.items())
                     for i, row in enumerate(rows))
    app.emit({"dataset": dataset, "rows": rows}, f"{len(rows)} random scrubbed row(s) of {dataset}:\n{text}")
