"""Hostile message bodies, and a check that rendered HTML cannot run anything in a browser."""

from __future__ import annotations

from html.parser import HTMLParser

HOSTILE_BODIES = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](data:text/html,<script>alert(1)</script>)",
    "<svg onload=alert(1)>",
    '<iframe src="https://evil.example/"></iframe>',
    "<style>body{display:none}</style>",
    "**bold <b onclick='alert(1)'>unclosed [link](javascript:x) `code <script>",
    '" onmouseover="alert(1)" x="',
    "&lt;script&gt;alert(1)&lt;/script&gt; &#60;img src=x onerror=alert(1)&#62;",
    "@alice<script>alert(1)</script>",
    "[x](  javascript:alert(1)  'title')",
    "<a href='https://ok.example/' onclick='alert(1)'>x</a>",
]

FORBIDDEN_TAGS = {"script", "style", "iframe", "svg", "img", "object", "embed", "form", "math"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "srcset", "poster"}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag


def inert_problems(html: str) -> list[str]:
    """What in `html` could run script: tags, `on*` attributes, script-capable URLs."""
    problems = []
    if "<script" in html.lower():
        problems.append("<script in the text")
    parser = _Collector()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.tags:
        if tag in FORBIDDEN_TAGS:
            problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                problems.append(f"{tag}[{name}]")
            if name == "style":
                problems.append(f"{tag}[style]")
            if name in URL_ATTRIBUTES and value is not None:
                url = "".join(value.split()).lower()
                if url.startswith(("javascript:", "data:", "vbscript:")):
                    problems.append(f"{tag}[{name}={value}]")
    return problems
