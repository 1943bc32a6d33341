"""Which token plays which role (cls/bos, sep/eos, mask, pad, unk) and how a row is laid
out around its segments, read from a tokenizer's post-processor or given by the user."""

from __future__ import annotations

from dataclasses import dataclass

from mlmprep.core.errors import TokenizerError

ROLES = ("pad", "unk", "cls", "sep", "mask")  # the order of index.json's special_ids
BERT_NAMES = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
BERT_SPECIAL_TOKENS = tuple(BERT_NAMES[role] for role in ROLES)  # as mlmprep vocab writes them
CONVENTIONAL_NAMES = {
    "pad": ("[PAD]", "<pad>"),
    "unk": ("[UNK]", "<unk>"),
    "cls": ("[CLS]", "<s>"),
    "sep": ("[SEP]", "</s>"),
    "mask": ("[MASK]", "<mask>"),
}


@dataclass(frozen=True)
class TemplatePiece:
    """One item of a row: a special token, or segment "A" or "B", with its token type."""

    kind: str  # "special", "A" or "B"
    type_id: int
    token: str = ""

    def to_list(self) -> list:
        return [self.token if self.kind == "special" else self.kind, self.type_id]

    @classmethod
    def from_list(cls, item: list) -> TemplatePiece:
        name, type_id = item
        return cls(name, type_id) if name in ("A", "B") else cls("special", type_id, name)


def _bert_template(cls_token: str, sep_token: str) -> tuple[tuple, tuple]:
    single = (TemplatePiece("special", 0, cls_token), TemplatePiece("A", 0))
    single += (TemplatePiece("special", 0, sep_token),)
    pair = (*single, TemplatePiece("B", 1), TemplatePiece("special", 1, sep_token))
    return single, pair


@dataclass(frozen=True)
class SpecialTokens:
    """Role -> token and id, and the single and pair row templates."""

    tokens: dict[str, str]
    ids: dict[str, int]
    single: tuple[TemplatePiece, ...]
    pair: tuple[TemplatePiece, ...]

    @property
    def is_bert(self) -> bool:
        """BERT's names and layout: index.json then needs no layout entry (older builds
        have none)."""
        return self.tokens == BERT_NAMES and (self.single, self.pair) == _bert_template(
            "[CLS]", "[SEP]"
        )

    def template(self, pair: bool) -> tuple[TemplatePiece, ...]:
        return self.pair if pair else self.single

    def budget(self, max_seq_length: int, pair: bool) -> int:
        """Tokens of text a row holds: the length less the template's special tokens."""
        return max_seq_length - sum(p.kind == "special" for p in self.template(pair))

    @property
    def tokens_to_ids(self) -> dict[str, int]:
        return {token: self.ids[role] for role, token in self.tokens.items()}

    def manifest_ids(self) -> dict[str, int]:
        """index.json's `special_ids`: token -> id in role order."""
        return {self.tokens[role]: self.ids[role] for role in ROLES}

    def manifest_layout(self) -> dict:
        return {
            "roles": dict(self.tokens),
            "single": [p.to_list() for p in self.single],
            "pair": [p.to_list() for p in self.pair],
        }


def from_manifest(tokenizer_entry: dict) -> SpecialTokens:
    """The special tokens of a finished build, from index.json's tokenizer section
    (builds without a layout entry are BERT's)."""
    ids = tokenizer_entry["special_ids"]
    layout = tokenizer_entry.get("layout")
    if layout is None:
        single, pair = _bert_template("[CLS]", "[SEP]")
        return SpecialTokens(dict(BERT_NAMES), {r: ids[BERT_NAMES[r]] for r in ROLES}, single, pair)
    tokens = layout["roles"]
    return SpecialTokens(
        dict(tokens),
        {role: ids[tokens[role]] for role in ROLES},
        tuple(TemplatePiece.from_list(item) for item in layout["single"]),
        tuple(TemplatePiece.from_list(item) for item in layout["pair"]),
    )


def parse_special_tokens(text: str | None) -> dict[str, str]:
    """`cls=<s>,sep=</s>,mask=<mask>` -> {role: token}; a one-line error otherwise."""
    if not text:
        return {}
    roles: dict[str, str] = {}
    for item in text.split(","):
        role, _, token = item.partition("=")
        role = role.strip()
        if role not in ROLES or not token:
            raise TokenizerError(
                f"--special-tokens: {item!r} is not ROLE=TOKEN with ROLE one of "
                f"{', '.join(ROLES)} (e.g. cls=<s>,sep=</s>,mask=<mask>,pad=<pad>,unk=<unk>)"
            )
        roles[role] = token
    return roles


def read_special_tokens(
    definition: dict, vocab: dict[str, int], overrides: dict[str, str], source: str
) -> SpecialTokens:
    """Roles and templates of a tokenizer (its tokenizer.json as `definition`, its vocabulary
    with added tokens as `vocab`).

    cls and sep come from the post-processor (BertProcessing, RobertaProcessing,
    TemplateProcessing) unless overridden; with no post-processor they take BERT's or
    RoBERTa's conventional names. mask and pad take the conventional names, unk the
    model's unknown token. `overrides` (from --special-tokens) win; given cls or sep, rows
    use the BERT layout with those tokens.
    """
    single, pair = _templates(definition.get("post_processor"), source)
    tokens: dict[str, str] = {}
    if single and not ({"cls", "sep"} & overrides.keys()):
        specials = [p.token for p in single if p.kind == "special"]
        tokens["cls"], tokens["sep"] = specials[0], specials[-1]
    model_unk = (definition.get("model") or {}).get("unk_token")
    if model_unk is None and (definition.get("model") or {}).get("unk_id") is not None:
        unk_id = definition["model"]["unk_id"]
        model_unk = next((t for t, i in vocab.items() if i == unk_id), None)
    if model_unk:
        tokens["unk"] = model_unk
    tokens.update(overrides)
    for role in ROLES:
        if role not in tokens:
            found = [name for name in CONVENTIONAL_NAMES[role] if name in vocab]
            if found:
                tokens[role] = found[0]
    missing = [role for role in ROLES if tokens.get(role) not in vocab]
    if missing:
        looked = "; ".join(
            f"{role}: {tokens.get(role) or ' or '.join(CONVENTIONAL_NAMES[role])}"
            for role in missing
        )
        raise TokenizerError(
            f"{source}: no token for {', '.join(missing)} in the vocabulary (looked for "
            f"{looked}); pass --special-tokens " + ",".join(f"{role}=TOKEN" for role in missing)
        )
    if not single or {"cls", "sep"} & overrides.keys():
        single, pair = _bert_template(tokens["cls"], tokens["sep"])
    others = {p.token for p in (*single, *pair) if p.kind == "special"} - set(tokens.values())
    if others:
        raise TokenizerError(
            f"{source}: the post-processor places {', '.join(sorted(others))}, which is none of "
            "cls, sep, mask, pad, unk; pass --special-tokens cls=TOKEN,sep=TOKEN to lay rows "
            "out as cls A sep (B sep)"
        )
    ordered = {role: tokens[role] for role in ROLES}
    return SpecialTokens(ordered, {r: vocab[t] for r, t in ordered.items()}, single, pair)


def _templates(processor: dict | None, source: str) -> tuple[tuple, tuple]:
    """Single and pair templates of a post-processor; empty when it has none."""
    if not processor:
        return (), ()
    kind = processor.get("type")
    if kind == "Sequence":
        found = [_templates(p, source) for p in processor.get("processors", [])]
        return next((t for t in found if t[0]), ((), ()))
    if kind == "BertProcessing":
        return _bert_template(processor["cls"][0], processor["sep"][0])
    if kind == "RobertaProcessing":
        cls_token, sep_token = processor["cls"][0], processor["sep"][0]
        single = (
            TemplatePiece("special", 0, cls_token),
            TemplatePiece("A", 0),
            TemplatePiece("special", 0, sep_token),
        )
        pair = (*single, TemplatePiece("special", 0, sep_token), TemplatePiece("B", 0))
        return single, (*pair, TemplatePiece("special", 0, sep_token))
    if kind == "TemplateProcessing":
        for token, entry in processor.get("special_tokens", {}).items():
            if len(entry.get("ids", [])) != 1:
                raise TokenizerError(
                    f"{source}: the post-processor's special token {token!r} has "
                    f"{len(entry.get('ids', []))} ids; mlmprep needs one id per token"
                )
        names = {k: v["tokens"][0] for k, v in processor.get("special_tokens", {}).items()}
        return (
            _template_items(processor["single"], names),
            _template_items(processor["pair"], names),
        )
    return (), ()


def _template_items(items: list[dict], names: dict[str, str]) -> tuple[TemplatePiece, ...]:
    pieces = []
    for item in items:
        if "SpecialToken" in item:
            entry = item["SpecialToken"]
            token = names.get(entry["id"], entry["id"])
            pieces.append(TemplatePiece("special", entry["type_id"], token))
        else:
            entry = item["Sequence"]
            pieces.append(TemplatePiece(entry["id"], entry["type_id"]))
    return tuple(pieces)
