"""The tokenizers a process has loaded: one TokenEncoder per tokenizer content, options
and backend, so that every unit a worker runs shares it."""

from __future__ import annotations

from mlmprep.core.config import BuildConfig
from mlmprep.text.special_tokens import parse_special_tokens
from mlmprep.text.tokenization import TokenEncoder, tokenizer_key
from mlmprep.text.tokenizer_backends import DEFAULT_BACKEND

_ENCODERS: dict[tuple[str, bool | None, str, str], TokenEncoder] = {}


def encoder_for(config: BuildConfig, backend: str = DEFAULT_BACKEND) -> TokenEncoder:
    """The tokenizer of this build on `backend`, loaded once per process for each
    tokenizer content (a file changed at the same path is loaded again)."""
    key = (tokenizer_key(config.tokenizer), config.lowercase, backend, config.special_tokens)
    if key not in _ENCODERS:
        roles = parse_special_tokens(config.special_tokens)
        _ENCODERS[key] = TokenEncoder(config.tokenizer, config.lowercase, backend, roles)
    return _ENCODERS[key]
