"""Fixtures of the methods tests (load with `pytest_plugins`): tiny model, tiny SAE, one thread.

Tiny matmuls on two threads of a busy CPU spend their time synchronising; the methods tests pin
torch to one thread while they run and restore the setting after.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from conftest import tiny_llama

from triggerscope.loading import LoadedModel
from triggerscope.sae.model import SAE, SAEConfig


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def toy(llama3_tokenizer) -> LoadedModel:  # type: ignore[no-untyped-def]
    """A 4-layer random Llama with confident logits (so losses move under steering)."""
    model = tiny_llama(len(llama3_tokenizer), init=0.2)
    return LoadedModel(model, llama3_tokenizer, "tiny-llama", None, 0.0)


@pytest.fixture
def toy_sae() -> SAE:
    torch.manual_seed(1)
    return SAE(SAEConfig(d_in=32, d_sae=64, k=4, layer=1))
