"""Message bodies: the Markdown subset, mentions, and sanitizing."""

from __future__ import annotations

import pytest

from chat.rendering import mention_candidates, render_body
from chat.tests.hostile import HOSTILE_BODIES, inert_problems

MEMBERS = {"alice": (1, "alice"), "bob.b": (2, "Bob.B")}


@pytest.mark.parametrize(
    ("body", "html"),
    [
        ("**bold** and *em*", "<p><strong>bold</strong> and <em>em</em></p>"),
        ("~~gone~~", "<p><s>gone</s></p>"),
        ("`x < y`", "<p><code>x &lt; y</code></p>"),
        ("> quoted", "<blockquote>\n<p>quoted</p>\n</blockquote>"),
        ("- one\n- two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"),
        ("line one\nline two", "<p>line one<br>\nline two</p>"),
        ("<b>raw</b>", "<p>&lt;b&gt;raw&lt;/b&gt;</p>"),
    ],
)
def test_markdown_subset(body, html):
    assert render_body(body).html == html


def test_links_get_safe_rel_and_images_stay_text():
    html = render_body("[site](https://example.org/) ![pic](https://example.org/a.png)").html
    assert '<a href="https://example.org/" rel="nofollow noopener noreferrer">site</a>' in html
    assert "<img" not in html


def test_mentions_of_known_members_become_spans():
    rendered = render_body("hi @alice and @Bob.B. and @nobody", MEMBERS)
    assert '<span class="mention" data-user-id="1">@alice</span>' in rendered.html
    assert '<span class="mention" data-user-id="2">@Bob.B</span>.' in rendered.html
    assert "@nobody" in rendered.html
    assert rendered.html.count("mention") == 2
    assert rendered.mentioned_ids == {1, 2}


def test_mentions_are_not_made_inside_code_links_or_emails():
    body = "`@alice` [@alice](https://x.example/) mail alice@alice.example"
    rendered = render_body(body, MEMBERS)
    assert 'class="mention"' not in rendered.html
    assert rendered.mentioned_ids == frozenset()


def test_mention_candidates_are_lowercased_and_trimmed():
    assert mention_candidates("@Alice, @bob.b. me@mail.example @x") == {"alice", "bob.b", "x"}


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_bodies_render_inert(body):
    html = render_body(body, MEMBERS).html
    assert inert_problems(html) == [], html


@pytest.mark.parametrize(
    "html",
    [
        "<script>x</script>",
        '<img src="x" onerror="y">',
        '<a href=" JavaScript:alert(1)">x</a>',
        '<a href="data:text/html,x">x</a>',
        '<span onmouseover="x">x</span>',
        "<svg/onload=x>",
    ],
)
def test_the_inert_check_itself_catches_live_html(html):
    assert inert_problems(html)
