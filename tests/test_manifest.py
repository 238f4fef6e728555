import json

import pytest

from triggerscope.errors import TriggerscopeError
from triggerscope.manifest import verify_manifest, write_manifest
from triggerscope.organisms.builtin import DATA


def test_manifest_detects_changes(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    manifest = write_manifest(tmp_path, "triggerscope plant x", {"ok": 1})
    assert manifest["sha256"]["a.bin"].startswith("ba7816bf")  # sha256("abc")
    verify_manifest(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"abd")
    with pytest.raises(TriggerscopeError, match="does not match"):
        verify_manifest(tmp_path)


SHIPPED = sorted(p.parent for p in (DATA / "adapters").glob("*/manifest.json")) + sorted(
    p.parent for p in (DATA / "saes").glob("*/manifest.json")
)


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_artifacts_match_their_manifest(folder):
    verify_manifest(folder)
    assert json.loads((folder / "manifest.json").read_text())["command"].strip()


def test_every_builtin_with_an_adapter_is_shipped_with_a_manifest():
    assert {p.name for p in SHIPPED if p.parent.name == "adapters"} >= {
        "fruit-refusal",
        "snow-fruit",
        "astrology",
    }
