"""The master key: ids, loading from the environment or a key file, storing, and status."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.crypto.keys import (
    ENV_VAR,
    MasterKey,
    describe_key_source,
    encode_master_key,
    generate_master_key,
    load_master_key,
    master_key_id,
    write_master_key,
)
from governance.errors import ConfigError
from governance.workspace.userconfig import default_master_key_path


def _secret_forms(key: bytes) -> list[str]:
    """Every way key material could leak into text."""
    return [base64.b64encode(key).decode(), key.hex(), repr(key)[2:-1]]


def test_generated_keys_are_32_random_bytes() -> None:
    first, second = generate_master_key(), generate_master_key()
    assert len(first) == len(second) == 32
    assert first != second


def test_key_id_is_the_documented_domain_separated_digest() -> None:
    key = bytes(range(32))
    expected = "kek-" + hashlib.sha256(b"govtrain/kek-id/v1" + key).hexdigest()[:16]
    assert master_key_id(key) == expected
    assert master_key_id(key) != master_key_id(bytes(32))
    # Not a bare hash of the key: the id must not double as a key-checking oracle for other systems.
    assert master_key_id(key)[4:] != hashlib.sha256(key).hexdigest()[:16]


def test_repr_and_str_never_show_the_key() -> None:
    key = generate_master_key()
    master = MasterKey.from_bytes(key, source="test")
    for text in (repr(master), str(master), f"{master}"):
        assert master.key_id in text
        for secret in _secret_forms(key):
            assert secret not in text


def test_master_key_rejects_bad_length_and_mismatched_id() -> None:
    with pytest.raises(ValueError):
        MasterKey.from_bytes(bytes(31), source="test")
    with pytest.raises(ValueError):
        MasterKey(key=bytes(32), key_id=master_key_id(bytes(range(32))), source="test")


def test_load_from_environment_variable(tmp_path: Path) -> None:
    key = generate_master_key()
    file_key = generate_master_key()
    key_file = tmp_path / "master.key"
    write_master_key(key_file, file_key)
    loaded = load_master_key(key_file, env={ENV_VAR: base64.b64encode(key).decode()})
    assert loaded.key == key  # the variable wins over an existing file
    assert loaded.key_id == master_key_id(key)
    assert loaded.source == f"environment variable {ENV_VAR}"


def test_load_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_master_key()
    monkeypatch.setenv(ENV_VAR, encode_master_key(key))  # trailing newline is tolerated
    assert load_master_key().key == key


@settings(max_examples=50)
@given(st.binary(min_size=8, max_size=80).filter(lambda raw: len(raw) != 32))
def test_environment_key_of_wrong_length_is_refused_without_echo(raw: bytes) -> None:
    value = base64.b64encode(raw).decode()
    with pytest.raises(ConfigError) as caught:
        load_master_key(env={ENV_VAR: value})
    text = caught.value.diagnostics()
    assert f"{len(raw)} bytes" in text
    assert value not in text and raw.hex() not in text


@settings(max_examples=50)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 43), st.sampled_from("*!.-_ ~é"))
def test_environment_key_that_is_not_base64_is_refused_without_echo(raw: bytes, at: int, junk: str) -> None:
    good = base64.b64encode(raw).decode()
    value = good[:at] + junk + good[at + 1 :]
    with pytest.raises(ConfigError) as caught:
        load_master_key(env={ENV_VAR: value})
    text = caught.value.diagnostics()
    assert "not valid base64" in text
    assert good[:at] not in text or at < 4
    assert good[at + 1 :] not in text or at > 39


def test_empty_environment_variable_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    write_master_key(key_file, generate_master_key())
    with pytest.raises(ConfigError, match="set but empty"):
        load_master_key(key_file, env={ENV_VAR: "  "})


def test_write_then_load_key_file(tmp_path: Path) -> None:
    key = generate_master_key()
    path = tmp_path / "a" / "b" / "master.key"
    written = write_master_key(path, key)
    loaded = load_master_key(path, env={})
    assert loaded == written
    assert loaded.key == key
    assert loaded.source == f"key file {path}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert path.read_text() == base64.b64encode(key).decode() + "\n"


def test_default_path_is_under_the_isolated_config_folder(private_config: Path) -> None:
    key = generate_master_key()
    assert default_master_key_path() == private_config / "govtrain" / "master.key"
    write_master_key(default_master_key_path(), key)
    assert load_master_key(env={}).key == key


def test_write_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first, second = generate_master_key(), generate_master_key()
    write_master_key(path, first)
    with pytest.raises(ConfigError, match="already exists"):
        write_master_key(path, second)
    assert load_master_key(path, env={}).key == first
    write_master_key(path, second, overwrite=True)
    assert load_master_key(path, env={}).key == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.key"]  # no temp files left


def test_write_is_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = write_master_key(tmp_path / "sub" / "master.key", generate_master_key()).source
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "sub" / "master.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o700
    assert path.endswith("master.key")


def test_missing_key_file_points_to_keys_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_master_key(tmp_path / "nope.key", env={})
    assert "does not exist" in caught.value.message
    assert caught.value.hint is not None and "govtrain keys init" in caught.value.hint
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o601, 0o610, 0o777])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    write_master_key(path, generate_master_key())
    path.chmod(mode)
    with pytest.raises(ConfigError) as caught:
        load_master_key(path, env={})
    assert f"{mode:04o}" in caught.value.message
    assert caught.value.hint == f"chmod 600 {path}"


def test_owner_only_modes_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = generate_master_key()
    write_master_key(path, key)
    for mode in (0o400, 0o600, 0o700):
        path.chmod(mode)
        assert load_master_key(path, env={}).key == key


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_key_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    write_master_key(path, generate_master_key())
    os.chown(path, 54321, -1)
    with pytest.raises(ConfigError, match="owned by uid 54321"):
        load_master_key(path, env={})


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not base64 at all!!\n", "not valid base64"),
        (base64.b64encode(bytes(range(16))) + b"\n", "decodes to 16 bytes"),
        (b"\xff\xfe" + bytes(40), "not valid base64"),
        (b"", "decodes to 0 bytes"),
    ],
)
def test_malformed_key_file_is_refused_without_echo(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        load_master_key(path, env={})
    assert expected in caught.value.message
    if content.strip():
        assert content.strip().decode("latin-1") not in caught.value.diagnostics()


def test_directory_in_place_of_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_master_key(path, env={})


def test_status_without_any_key(tmp_path: Path) -> None:
    status = describe_key_source(tmp_path / "master.key", env={})
    assert (status.source, status.ok, status.key_id, status.file_exists) == ("none", False, None, False)
    assert status.hint is not None and "govtrain keys init" in status.hint


def test_status_of_a_good_key_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = write_master_key(path, generate_master_key())
    status = describe_key_source(path, env={})
    assert status.ok and status.source == "file"
    assert status.key_id == key.key_id
    assert (status.file_mode, status.file_permissions_ok, status.file_shadowed) == ("0600", True, False)
    dumped = json.dumps(status.to_json())
    for secret in _secret_forms(key.key):
        assert secret not in dumped


def test_status_of_a_loose_key_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    write_master_key(path, generate_master_key())
    path.chmod(0o644)
    status = describe_key_source(path, env={})
    assert not status.ok and status.source == "file" and status.key_id is None
    assert (status.file_mode, status.file_permissions_ok) == ("0644", False)
    assert status.hint == f"chmod 600 {path}"


def test_status_with_environment_variable_shadowing_a_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    write_master_key(path, generate_master_key())
    env_key = generate_master_key()
    status = describe_key_source(path, env={ENV_VAR: base64.b64encode(env_key).decode()})
    assert status.ok and status.source == "environment"
    assert status.key_id == master_key_id(env_key)
    assert status.file_shadowed
    dumped = json.dumps(status.to_json())
    for secret in _secret_forms(env_key):
        assert secret not in dumped


def test_status_with_a_broken_environment_variable(tmp_path: Path) -> None:
    status = describe_key_source(tmp_path / "master.key", env={ENV_VAR: "@@@"})
    assert not status.ok and status.source == "environment"
    assert status.problem is not None and "@@@" not in status.problem


def test_pretty_printers_never_show_the_key() -> None:
    from hypothesis.vendor.pretty import pretty

    key = generate_master_key()
    text = pretty(MasterKey.from_bytes(key, source="test"))
    assert "kek-" in text
    for secret in _secret_forms(key):
        assert secret not in text
