"""A tiny byte-level tokenizer built locally, for tiny test models (no downloads).

Byte-level BPE with the 256 byte symbols and no merges: it encodes any text losslessly with a
vocabulary of ~260, so tiny LMs stay tiny, and it carries what a real multimodal checkpoint's
tokenizer carries — ChatML special tokens, the `<image>`/`<video>` placeholders and a chat
template with `{"type": "video"}` parts — so the processor code paths are the real ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"

# ChatML (Qwen2 / LLaVA-OneVision family). Media parts render as their placeholder in content
# order, each followed by a newline; assistant text is wrapped in {% generation %} so
# `return_assistant_tokens_mask=True` marks exactly the supervised tokens.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}{% endgeneration %}"
    "{% else %}{{ message['content'] }}{% endif %}"
    "{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif part['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif part['type'] == 'text' %}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ part['text'] }}{% endgeneration %}"
    "{% else %}{{ part['text'] }}{% endif %}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")
NAMES = {IMAGE_TOKEN: "image_token", VIDEO_TOKEN: "video_token"}


def tiny_tokenizer(
    placeholders: tuple[str, ...] = (IMAGE_TOKEN, VIDEO_TOKEN),
    corpus: Iterable[str] | None = None,
    vocab_size: int = 1024,
) -> PreTrainedTokenizerBase:
    """Byte-level tokenizer with ChatML specials, the media `placeholders` and a chat template.

    Fewer placeholders make the tokenizer of an image-only model (`("<image>",)`) or of a plain LM (`()`).
    With a `corpus`, BPE merges are learned from it (up to `vocab_size` symbols), as any LM's tokenizer
    is trained on its data: frequent words become one token each, which a tiny LM trained from scratch
    needs to tie a question's words to what it sees; any other text still encodes, byte by byte.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    if corpus is not None:
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=alphabet, show_progress=False)
        backend.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={NAMES[token]: token for token in placeholders},
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )
    tokenizer.add_special_tokens(
        {"extra_special_tokens": list(CHATML_TOKENS)}, replace_extra_special_tokens=False
    )
    return tokenizer
