"""Message bodies: a Markdown subset rendered on the server, then sanitized.

markdown-it-py parses with raw HTML off, so `<script>` stays text; nh3 (ammonia) then keeps only
an allowlist of tags, attributes and URL schemes, so nothing a body says can run in a browser.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

MENTION_RE = re.compile(r"(?<![\w@/])@([A-Za-z0-9_.+-]{1,150})")

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "a", "span", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "span": {"class", "data-user-id"},
    "ol": {"start"},
    "code": {"class"},
}
URL_SCHEMES = {"http", "https", "mailto"}


@dataclass(frozen=True)
class Rendered:
    html: str
    mentioned_ids: frozenset[int] = field(default_factory=frozenset)


def mention_candidates(body: str) -> set[str]:
    """Lowercased usernames a body names with `@`, to look up before rendering."""
    return {name.rstrip(".").lower() for name in MENTION_RE.findall(body)}


def _mention_rule(state: Any) -> None:
    known: Mapping[str, tuple[int, str]] = state.env.get("mentionable", {})
    if not known:
        return
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        inside_code = False
        for token in block.children:
            if token.type in ("link_open",):
                inside_code = True
            elif token.type in ("link_close",):
                inside_code = False
            if token.type != "text" or inside_code or "@" not in token.content:
                children.append(token)
                continue
            children.extend(_split_mentions(token.content, known, state.env))
        block.children = children


def _split_mentions(
    text: str, known: Mapping[str, tuple[int, str]], env: dict[str, Any]
) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    for match in MENTION_RE.finditer(text):
        name = match.group(1).rstrip(".")
        target = known.get(name.lower())
        if target is None:
            continue
        start, end = match.start(), match.start() + 1 + len(name)
        if start > position:
            tokens.append(_text(text[position:start]))
        mention = Token("mention", "span", 0)
        mention.meta = {"user_id": target[0], "username": target[1]}
        tokens.append(mention)
        env.setdefault("mentioned", set()).add(target[0])
        position = end
    if position < len(text):
        tokens.append(_text(text[position:]))
    return tokens


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _render_mention(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    meta = tokens[idx].meta
    username = nh3.clean_text(meta["username"])
    return f'<span class="mention" data-user-id="{int(meta["user_id"])}">@{username}</span>'


def _build_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "typographer": False})
    md.enable("strikethrough").disable("image")
    md.core.ruler.push("mentions", _mention_rule)
    md.add_render_rule("mention", _render_mention)
    return md


_PARSER = _build_parser()


def render_body(body: str, mentionable: Mapping[str, tuple[int, str]] | None = None) -> Rendered:
    """Render a message body to sanitized HTML.

    `mentionable` maps lowercased usernames to `(user_id, username)` for the people who may be
    mentioned (the channel's members); other `@names` stay plain text.
    """
    env: dict[str, Any] = {"mentionable": dict(mentionable or {})}
    raw = _PARSER.render(body, env)
    html = nh3.clean(
        raw,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener noreferrer",
        strip_comments=True,
    )
    return Rendered(html=html.strip(), mentioned_ids=frozenset(env.get("mentioned", set())))
