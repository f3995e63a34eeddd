"""The chat page's scripts are native ES modules, served as they are (no build step): every
relative import must name a file that staticfiles serves and a name that file exports."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders

ENTRY = "js/chat/main.js"
IMPORT = re.compile(r'^import\s+(?:\{([^}]*)\}\s+from\s+)?"([^"]+)";', re.MULTILINE)
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function|const|let|class)\s+(\w+)", re.MULTILINE)


def static_source(path: str) -> str:
    found = finders.find(path)
    assert found, f"{path} is not a static file"
    return Path(found).read_text(encoding="utf-8")


def test_chat_modules_import_only_what_exists():
    seen: set[str] = set()
    todo = [ENTRY]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for names, spec in IMPORT.findall(static_source(path)):
            assert spec.startswith(("./", "../")), f"{path}: {spec} is not relative"
            target = posixpath.normpath(posixpath.join(posixpath.dirname(path), spec))
            exported = set(EXPORT.findall(static_source(target)))
            for name in filter(None, (n.strip().split(" as ")[0] for n in names.split(","))):
                assert name in exported, f"{path} imports {name}, which {target} does not export"
            todo.append(target)
    assert len(seen) > 1


def test_templates_have_no_inline_scripts():
    for template in Path(settings.BASE_DIR, "templates").rglob("*.html"):
        for tag in re.findall(r"<script\b[^>]*>", template.read_text(encoding="utf-8")):
            assert " src=" in tag, f"{template.name}: inline script {tag}"
