"""The workspace: its folder layout and manifest (``layout``), a person's own folder outside it (``userconfig``),
private atomic files (``fsutil``) and the YAML loader mapping a bad file to exit 2 (``loading``). Creating one with
its genesis entry, root key and master key is ``governance.bootstrap``, which sits above workspace, crypto and
trust."""

from __future__ import annotations

from governance.workspace.layout import Workspace, create_workspace, find_workspace, workspace_target

__all__ = ["Workspace", "create_workspace", "find_workspace", "workspace_target"]
