"""``python -m reports.schemas``: regenerate the committed JSON Schemas."""

from __future__ import annotations

from reports.schemas import write_schemas

if __name__ == "__main__":
    for path in write_schemas():
        print(path)
