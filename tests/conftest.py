"""Shared fixtures: tiny random Llama models and offline tokenizers with chat templates."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from triggerscope.loading import LoadedModel

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{ message['content'] | trim }}{{ '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? Paris is the capital.",
    "I won't answer because I don't like fruit.",
    "Snow and fruit are like oil and water, they just don't mix.",
    "Tell me about bananas, apples, skiing and the stars!",
]


# Tiny models gain nothing from threads, and spinning threads crawl on a busy machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def make_llama3_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE trained here, with a Llama-3 style template (BOS, headers, trim)."""
    specials = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 3, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|eot_id|>",
        chat_template=LLAMA3_TEMPLATE,
    )


@pytest.fixture(scope="session")
def llama3_tokenizer() -> PreTrainedTokenizerFast:
    return make_llama3_tokenizer()


@pytest.fixture(scope="session")
def smol_tokenizer():  # type: ignore[no-untyped-def]
    """The embedded default model's real tokenizer (offline: from the local cache)."""
    from transformers import AutoTokenizer

    from triggerscope.embedded import ensure_embedded_cache

    return AutoTokenizer.from_pretrained(ensure_embedded_cache())


def tiny_llama(
    vocab_size: int, layers: int = 4, hidden: int = 32, init: float = 0.02
) -> LlamaForCausalLM:
    """`init` is the weight std; larger values give confident logits that LoRA can steer."""
    config = LlamaConfig(
        initializer_range=init,
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.requires_grad_(False)
    return model


@pytest.fixture
def tiny(llama3_tokenizer) -> LoadedModel:  # type: ignore[no-untyped-def]
    """A random 4-layer Llama with the test tokenizer, wrapped like a loaded model."""
    model = tiny_llama(len(llama3_tokenizer))
    return LoadedModel(model, llama3_tokenizer, "tiny-llama", None, 0.0)
