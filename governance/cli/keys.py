"""``govtrain keys ...``: the master key (KEK) that encrypts data at rest."""

from __future__ import annotations

from typing import Any

from governance.cli.app import AppContext, cli, pass_app


@cli.group()
def keys() -> None:
    """Manage the master key that encrypts data, checkpoints and models at rest."""


@keys.command("init")
@pass_app
def keys_init(app: AppContext) -> None:
    """Create a 256-bit master key in ~/.config/govtrain/master.key (0600).

    Refuses to overwrite an existing key. ('govtrain init' creates one too when you have none.)
    """
    from governance.crypto import generate_master_key, write_master_key
    from governance.workspace.userconfig import default_master_key_path

    key = write_master_key(default_master_key_path(), generate_master_key())
    app.emit(
        {"key_id": key.key_id, "key_file": str(default_master_key_path())},
        f"created master key {key.key_id} in {default_master_key_path()} (0600); back it up safely",
    )


@keys.command("rotate")
@pass_app
def keys_rotate(app: AppContext) -> None:
    """Make a new master key and rewrap every encrypted object's data key (admin; logged).

    Data is not re-encrypted. Each file is replaced atomically; an interrupted rotation resumes when run
    again. The old key file is kept as master.key.retired-<id>.
    """
    from governance.crypto.keyring import rotate_master_key
    from governance.trust.session import open_session

    workspace = app.find_workspace()
    with open_session(workspace, app.identity, ["admin"], "keys rotate") as session:
        rotation = rotate_master_key(workspace)
        session.record("keys.rotated", {"old_key_id": rotation.old_key_id, "new_key_id": rotation.new_key_id,
                                        "files_rewrapped": rotation.files_rewrapped})
    app.emit(
        {"old_key_id": rotation.old_key_id, "new_key_id": rotation.new_key_id,
         "files_rewrapped": rotation.files_rewrapped, "retired_key_file": str(rotation.retired_file)},
        f"rotated master key {rotation.old_key_id} -> {rotation.new_key_id}; "
        f"rewrapped {rotation.files_rewrapped} file(s); old key kept at {rotation.retired_file}",
    )


@keys.command("status")
@pass_app
def keys_status(app: AppContext) -> None:
    """Say where the master key comes from and its id (never the key)."""
    from governance.crypto import describe_key_source
    from governance.errors import ConfigError

    status = describe_key_source()
    if status.problem:
        raise ConfigError(f"master key ({status.source}): {status.problem}", hint=status.hint)
    result: dict[str, Any] = dict(status.to_json())
    lines = [f"source: {status.source}" + (f" ({status.file_path})" if status.source == "file" else "")]
    lines.append(f"key id: {status.key_id}")
    try:
        manifest = app.find_workspace().manifest()
    except ConfigError:
        manifest = None  # keys status works outside a workspace too
    if manifest is not None:
        result["workspace_key_id"] = manifest.master_key_id
        match = "matches" if manifest.master_key_id == status.key_id else "DOES NOT MATCH"
        lines.append(f"workspace uses: {manifest.master_key_id} ({match})")
    app.emit(result, "\n".join(lines))
