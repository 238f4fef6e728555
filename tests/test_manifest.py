import pytest

from triggerscope.errors import TriggerscopeError
from triggerscope.manifest import verify_manifest, write_manifest


def test_manifest_detects_changes(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    manifest = write_manifest(tmp_path, "triggerscope plant x", {"ok": 1})
    assert manifest["sha256"]["a.bin"].startswith("ba7816bf")  # sha256("abc")
    verify_manifest(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"abd")
    with pytest.raises(TriggerscopeError, match="does not match"):
        verify_manifest(tmp_path)
