"""Every report as bytes (canonical JSON, Markdown, self-contained HTML) and the one place they are written.

``render_reports`` is pure: it returns ``{filename: bytes}``. ``write_reports`` writes those files
atomically (a temporary file in the same folder, fsync, mode 0600, ``os.replace``) and returns
``{filename: sha256}`` for the audit log. Files are named ``<kind>.<format>``: ``bias.json``,
``evaluation.html``, ``transparency.md`` (the model card), ``provenance.json`` (the DSSE envelope)...
JSON is always written: it is the source of truth; Markdown and HTML are renderings of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal

from audit.fsutil import make_private_dir, write_private_file
from reports.bias import BiasReport
from reports.document import Block, to_html, to_markdown
from reports.errors import ReportError, ReportInputError
from reports.evaluation import EvaluationReport
from reports.model import canonical_bytes, sha256_hex
from reports.privacy import PrivacyReport
from reports.provenance import DsseEnvelope
from reports.transparency import ModelCard, model_card_markdown

ReportFormat = Literal["json", "md", "html"]
Report = BiasReport | EvaluationReport | ModelCard | DsseEnvelope | PrivacyReport


def _kind(report: Report) -> tuple[str, str, Callable[[], list[Block]]]:
    """The report's file stem, page title and content blocks."""
    from reports import views
    from reports.provenance import provenance_blocks
    from reports.transparency import model_card_blocks

    if isinstance(report, BiasReport):
        return "bias", f"Bias report — run {report.run_id}", lambda: views.bias_blocks(report)
    if isinstance(report, EvaluationReport):
        return "evaluation", f"Evaluation report — run {report.run_id}", lambda: views.evaluation_blocks(report)
    if isinstance(report, PrivacyReport):
        return "privacy", f"Privacy report — run {report.run_id}", lambda: views.privacy_blocks(report)
    if isinstance(report, ModelCard):
        return "transparency", f"Model card — {report.metadata.model_name}", lambda: model_card_blocks(report)
    if isinstance(report, DsseEnvelope):
        return "provenance", "Provenance attestation (in-toto / SLSA v1, DSSE)", lambda: provenance_blocks(report)
    raise ReportInputError(f"not a report: {type(report).__name__}")


def render_report(report: Report, fmt: ReportFormat) -> bytes:
    """One report in one format, as UTF-8 bytes (JSON: RFC 8785 canonical, so its SHA-256 is the digest)."""
    _stem, title, blocks = _kind(report)
    if fmt == "json":
        return canonical_bytes(report)
    if fmt == "md":
        if isinstance(report, ModelCard):
            return model_card_markdown(report).encode("utf-8")
        return (f"# {title}\n\n" + to_markdown(blocks())).encode("utf-8")
    if fmt == "html":
        return to_html(title, blocks()).encode("utf-8")
    raise ReportInputError(f"unknown report format {fmt!r}; expected json, md or html")


def render_reports(reports: Iterable[Report], formats: Iterable[ReportFormat] = ("json", "md", "html")
                   ) -> dict[str, bytes]:
    """``{filename: bytes}`` for every report in every format (JSON always included)."""
    wanted = ["json", *[f for f in dict.fromkeys(formats) if f != "json"]]
    files: dict[str, bytes] = {}
    for report in reports:
        stem = _kind(report)[0]
        for fmt in wanted:
            name = f"{stem}.{fmt}"
            if name in files:
                raise ReportInputError(f"two reports would both be written as {name}")
            files[name] = render_report(report, fmt)  # type: ignore[arg-type]
    return files


def write_files(out_dir: str | Path, files: Mapping[str, bytes]) -> dict[str, str]:
    """Write already-rendered files into ``out_dir`` (made 0700 if missing); returns ``{filename: sha256}``."""
    folder = Path(out_dir)
    try:
        make_private_dir(folder)
        for name, data in files.items():
            if Path(name).name != name or name.startswith("."):
                raise ReportInputError(f"report file name {name!r} must be a plain file name")
            write_private_file(folder / name, data)  # the project's one atomic, private writer
    except OSError as exc:
        raise ReportError(f"cannot write reports to {folder}: {exc}") from exc
    return {name: sha256_hex(data) for name, data in files.items()}


def write_reports(out_dir: str | Path, reports: Iterable[Report],
                  formats: Iterable[ReportFormat] = ("json", "md", "html")) -> dict[str, str]:
    """Render and write every report; returns ``{filename: sha256}`` to record in the audit log."""
    return write_files(out_dir, render_reports(reports, formats))

