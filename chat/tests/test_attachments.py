"""Attachments through the HTTP API, the form post, the socket and the purge command; every
behaviour test runs on local storage and on a real S3 API (moto on loopback)."""

from __future__ import annotations

import io
import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image, PngImagePlugin

from chat.models import Attachment, Channel, Message
from chat.services import channel_create, message_delete, message_send
from chat.tests.conftest import PDF, jpeg, png, use_s3
from conftest import client_for

pytestmark = pytest.mark.django_db


def fetch(client, url):
    """Follow our download view as a browser would: to the file (local) or to S3's presigned GET."""
    response = client.get(url)
    if response.status_code == 302 and response["Location"].startswith("http://127.0.0.1"):
        direct = requests.get(response["Location"], timeout=10)
        return direct.status_code, direct.headers, direct.content
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, response, body


def send(user, channel, body="", attachments=()):
    return client_for(user).post(
        f"/api/channels/{channel.id}/messages/",
        {"body": body, "client_id": str(uuid.uuid4()), "attachments": list(attachments)},
        content_type="application/json",
    )


# --- The happy paths -------------------------------------------------------------------------


def test_photo_shows_inline_as_thumbnail_without_location(upload, store, alice, bob, general):
    photo = jpeg((800, 400), gps=True, orientation=6)  # taken sideways, with GPS in its EXIF
    confirmed = upload(alice, "harbour.jpg", photo, "image/jpeg")
    assert confirmed["status"] == 200, confirmed
    assert confirmed["attachment"]["is_image"] is True
    sent = send(alice, general, "the catch", [confirmed["attachment"]["id"]])
    assert sent.status_code == 201

    history = client_for(bob).get(f"/api/channels/{general.id}/messages/").json()
    [item] = history["messages"][-1]["attachments"]
    assert item["name"] == "harbour.jpg"
    assert item["content_type"] == "image/jpeg"
    # Orientation applied: the sideways 800x400 photo is shown upright, 400x800.
    assert (item["width"], item["height"]) == (400, 800)
    assert f'src="{item["thumbnail_url"]}"' in history["messages"][-1]["html"]
    assert item["url"].startswith("/attachments/") and "amazonaws" not in item["url"]

    bob_client = client_for(bob)
    status, headers, thumb = fetch(bob_client, item["thumbnail_url"])
    assert status == 200
    assert headers["Content-Type"] == "image/webp"
    thumbnail = Image.open(io.BytesIO(thumb))
    assert max(thumbnail.size) <= 480
    assert thumbnail.getexif() == {}

    status, headers, full = fetch(bob_client, item["url"])
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Content-Disposition"].startswith("inline")
    served = Image.open(io.BytesIO(full))
    assert served.size == (400, 800)
    assert served.getexif() == {}
    assert b"HobbyCam" not in full and b"GPS" not in full
    # The original, with its location, is no longer stored at all.
    assert len(store.keys()) == 2


def test_file_shows_as_card_and_always_downloads(upload, store, alice, bob, general):
    confirmed = upload(alice, "club rules.pdf", PDF, "application/pdf")
    assert confirmed["status"] == 200, confirmed
    send(alice, general, "rules", [confirmed["attachment"]["id"]])
    page = client_for(bob).get(general.get_absolute_url()).content.decode()
    assert "club rules.pdf" in page
    assert "application/pdf" in page
    item = client_for(bob).get(f"/api/channels/{general.id}/messages/").json()["messages"][-1]
    [card] = item["attachments"]
    assert card["is_image"] is False and card["thumbnail_url"] is None
    status, headers, body = fetch(client_for(bob), card["url"])
    assert status == 200
    assert body == PDF
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert 'filename="club rules.pdf"' in headers["Content-Disposition"]


def test_markup_is_never_served_inline(upload, store, settings, alice, bob, general):
    settings.ATTACHMENT_ALLOWED_TYPES = [*settings.ATTACHMENT_ALLOWED_TYPES, "image/svg+xml"]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    confirmed = upload(alice, "logo.svg", svg, "image/svg+xml")
    assert confirmed["status"] == 200, confirmed
    assert confirmed["attachment"]["is_image"] is False
    send(alice, general, "logo", [confirmed["attachment"]["id"]])
    [item] = (
        client_for(bob)
        .get(f"/api/channels/{general.id}/messages/")
        .json()["messages"][-1]["attachments"]
    )
    status, headers, _ = fetch(client_for(bob), item["url"])
    assert status == 200
    assert headers["Content-Disposition"].startswith("attachment;")


@pytest.mark.parametrize("store", ["local"], indirect=True)
def test_local_download_has_protective_headers(upload, store, alice, bob, general):
    confirmed = upload(alice, "notes.txt", b"bring waders\n", "text/plain")
    send(alice, general, "", [confirmed["attachment"]["id"]])
    response = client_for(bob).get(f"/attachments/{confirmed['attachment']['id']}/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert "sandbox" in response["Content-Security-Policy"]


@pytest.mark.parametrize("store", ["s3"], indirect=True)
def test_s3_download_is_a_short_presigned_get_with_forced_headers(
    upload, store, alice, bob, general
):
    confirmed = upload(alice, "tide table.txt", b"high water 06:12\n", "text/plain")
    send(alice, general, "", [confirmed["attachment"]["id"]])
    response = client_for(bob).get(f"/attachments/{confirmed['attachment']['id']}/")
    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["X-Amz-Expires"] == ["60"]
    assert query["response-content-type"] == ["text/plain"]
    assert query["response-content-disposition"][0].startswith("attachment;")
    direct = requests.get(response["Location"], timeout=10)
    assert direct.headers["Content-Disposition"].startswith("attachment;")
    assert direct.content == b"high water 06:12\n"


def test_several_files_in_one_message_in_order(upload, store, alice, bob, general):
    ids = [
        upload(alice, f"shot{i}.png", png((20 + i, 20)), "image/png")["attachment"]["id"]
        for i in range(3)
    ]
    assert send(alice, general, "three shots", ids).status_code == 201
    item = client_for(bob).get(f"/api/channels/{general.id}/messages/").json()["messages"][-1]
    assert [a["name"] for a in item["attachments"]] == ["shot0.png", "shot1.png", "shot2.png"]
    assert item["html"].count('class="attachment__thumb"') == 3


def test_form_post_without_javascript(store, alice, bob, general):
    client = client_for(alice)
    response = client.post(
        f"/c/{general.community.slug}/{general.name}/post/",
        {
            "body": "from the form",
            "client_id": str(uuid.uuid4()),
            "files": [_file("boat.png", png()), _file("plan.pdf", PDF)],
        },
    )
    assert response.status_code == 302
    page = client_for(bob).get(general.get_absolute_url()).content.decode()
    assert "from the form" in page
    assert 'class="attachment__thumb"' in page and 'alt="boat.png"' in page
    assert "plan.pdf" in page
    assert Attachment.objects.filter(message__isnull=False).count() == 2


def test_form_post_with_bad_file_says_why_and_keeps_nothing(store, alice, general):
    client = client_for(alice)
    response = client.post(
        f"/c/{general.community.slug}/{general.name}/post/",
        {
            "body": "two files",
            "client_id": str(uuid.uuid4()),
            "files": [_file("boat.png", png()), _file("fake.png", b"MZ\x90\x00" + b"\x00" * 64)],
        },
        follow=True,
    )
    assert "cannot be shared here" in response.content.decode()
    assert not Message.objects.filter(body="two files").exists()
    assert Attachment.objects.count() == 0
    assert store.keys() == []


def _file(name, content):
    handle = io.BytesIO(content)
    handle.name = name
    return handle


# --- Bad input: a clear error, and nothing left behind ---------------------------------------


BOMB = png((20_000, 20_000), mode="1")  # 400 megapixels in a few kilobytes


@pytest.mark.parametrize(
    ("name", "content", "content_type", "status", "code"),
    [
        ("big.bin", None, "application/octet-stream", 413, "too_large"),
        ("cat.jpg", b"<html><script>alert(1)</script>", "image/jpeg", 415, "unsupported_type"),
        ("cat.jpg", PDF, "image/jpeg", 415, "unsupported_type"),
        ("empty.txt", b"", "text/plain", 400, "invalid"),
        ("../../etc/passwd", b"root\n", "text/plain", 400, "invalid"),
        ("a\\b.txt", b"x\n", "text/plain", 400, "invalid"),
        ("bell\x07.txt", b"x\n", "text/plain", 400, "invalid"),
        ("x" * 296 + ".txt", b"x\n", "text/plain", 400, "too_long"),
        ("bomb.png", BOMB, "image/png", 413, "too_large"),
        ("broken.png", png()[:60], "image/png", 400, "invalid"),
    ],
    ids=[
        "oversized", "html-as-jpg", "pdf-as-jpg", "zero-bytes", "path", "backslash",
        "control-char", "300-chars", "image-bomb", "truncated-image",
    ],
)  # fmt: skip
def test_bad_upload_gets_clear_error_and_leaves_nothing(
    upload, store, settings, alice, name, content, content_type, status, code
):
    if content is None:
        settings.ATTACHMENT_MAX_BYTES = 1024
        content = b"\x00" * 2048
    result = upload(alice, name, content, content_type)
    assert result["status"] == status, result
    assert result["error"]["code"] == code
    assert result["error"]["detail"]
    assert Attachment.objects.count() == 0
    assert store.keys() == []


def animated(fmt: str, frames: int, size: tuple[int, int], **options) -> bytes:
    """An animation of `frames` plain frames of `size`: large when decoded, tiny on disk."""
    images = [Image.new("RGB", size, (i * 37 % 256, 90, 200)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, fmt, save_all=True, append_images=images[1:], **options)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "fmt", "content_type"),
    [
        ("bomb.webp", "WEBP", "image/webp"),
        ("bomb.gif", "GIF", "image/gif"),
        # An APNG whose animation chunk comes after a long comment, so that the first kilobytes
        # look like a plain PNG (an APNG detected as such is refused as a type).
        ("bomb.png", "PNG", "image/png"),
        ("bomb.jpg", "MPO", "image/jpeg"),  # a JPEG with more pictures behind the first
    ],
)
def test_animation_bomb_is_refused_before_decoding(
    upload, store, settings, alice, name, fmt, content_type
):
    # Each frame fits the pixel limit; all of them together do not. (The same shape as six
    # frames of 7000x7000 under the default limit, scaled down to keep the test fast.)
    settings.ATTACHMENT_MAX_IMAGE_PIXELS = 1_000_000
    options = {}
    if fmt == "PNG":
        options["pnginfo"] = PngImagePlugin.PngInfo()
        options["pnginfo"].add_text("comment", "x" * 9000)
    content = animated(fmt, 3, (800, 800), **options)
    result = upload(alice, name, content, content_type)
    assert result["status"] == 413, result
    assert result["error"]["code"] == "too_large"
    assert "3 frames" in result["error"]["detail"]
    assert Attachment.objects.count() == 0
    assert store.keys() == []


BOM_COMMENT = b"\xef\xbb\xbf<!--" + b"x" * 1100 + b"-->\n"
SCRIPTED_SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.mark.parametrize(
    ("name", "content", "content_type", "detected"),
    [
        (
            "notes.html",
            b"Meeting notes\n\n<script>fetch('/api/channels/')</script>\n",
            "text/html",
            "text/html",
        ),
        ("notes.txt", b"hello\n<img src=x onerror=alert(1)>\n", "text/plain", "text/html"),
        ("clip.txt", b"see <x-card onmouseover='alert(1)'>here</x-card>", "", "text/html"),
        ("logo.svg", BOM_COMMENT + SCRIPTED_SVG, "", "image/svg+xml"),
        ("logo.txt", b"  \n" + b"x" * 3000 + b"\n" + SCRIPTED_SVG, "text/plain", "image/svg+xml"),
        ("feed.txt", b"# feed\n<?xml version='1.0'?><x:y xmlns:x='urn:x'/>", "", "application/xml"),
    ],
    ids=["script-as-html", "img-onerror", "custom-element-handler", "svg-after-comment",
         "svg-after-text", "xml"],
)  # fmt: skip
def test_markup_inside_text_is_refused_as_markup(
    upload, store, alice, name, content, content_type, detected
):
    result = upload(alice, name, content, content_type)
    assert result["status"] == 415, result
    assert result["error"]["code"] == "unsupported_type"
    assert result["error"]["detail"] == f"Files of type {detected} cannot be shared here."
    assert Attachment.objects.count() == 0
    assert store.keys() == []


def test_text_declared_as_html_is_not_stored_as_text(upload, store, alice):
    # Even without tags: the uploader's browser called it HTML, and a saved copy would open as such.
    result = upload(alice, "page.html", b"just words\n", "text/html")
    assert result["status"] == 415, result
    assert result["error"]["code"] == "unsupported_type"
    assert Attachment.objects.count() == 0


@pytest.mark.parametrize(
    "content",
    [b"if a < b and b > c:\n    pass\n", b"<https://example.org> and <me@example.org>\n"],
)
def test_text_with_angle_brackets_stays_text(upload, store, alice, content):
    result = upload(alice, "notes.txt", content, "text/plain")
    assert result["status"] == 200, result
    assert result["attachment"]["content_type"] == "text/plain"


def test_animation_with_too_many_frames_is_refused(upload, store, settings, alice):
    settings.ATTACHMENT_MAX_IMAGE_FRAMES = 10
    result = upload(alice, "flicker.gif", animated("GIF", 11, (4, 4)), "image/gif")
    assert result["status"] == 413, result
    assert result["error"]["code"] == "too_large"
    assert "at most 10 frames" in result["error"]["detail"]
    assert Attachment.objects.count() == 0
    assert store.keys() == []
    small = upload(alice, "blink.gif", animated("GIF", 10, (4, 4)), "image/gif")
    assert small["status"] == 200, small


def test_upload_larger_than_announced_is_refused_at_confirm(store, alice):
    client = client_for(alice)
    started = client.post(
        "/api/attachments/",
        {"name": "notes.txt", "size": 5, "content_type": "text/plain"},
        content_type="application/json",
    ).json()
    status = store.put(started, b"far more than five bytes\n", client)
    confirm = client.post(f"/api/attachments/{started['attachment']['id']}/confirm/")
    if store.backend == "local":
        assert status == 400  # refused on arrival
        assert confirm.json()["error"]["code"] == "upload_incomplete"
    else:
        assert confirm.status_code == 400
        assert "were announced" in confirm.json()["error"]["detail"]
    assert Attachment.objects.count() == 0
    assert store.keys() == []


def test_confirm_of_never_uploaded_object(store, alice):
    client = client_for(alice)
    started = client.post(
        "/api/attachments/",
        {"name": "ghost.png", "size": 100, "content_type": "image/png"},
        content_type="application/json",
    ).json()
    response = client.post(f"/api/attachments/{started['attachment']['id']}/confirm/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "upload_incomplete"
    assert Attachment.objects.count() == 0
    assert store.keys() == []


def test_forged_attachment_id_of_another_user(upload, store, alice, bob, general):
    bobs = upload(bob, "bob.png", png(), "image/png")["attachment"]["id"]
    response = send(alice, general, "stolen", [bobs])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not Message.objects.filter(body="stolen").exists()
    assert Attachment.objects.get(id=bobs).message is None
    # Nor can alice confirm, cancel or upload to it.
    client = client_for(alice)
    assert client.post(f"/api/attachments/{bobs}/confirm/").status_code == 404
    assert client.delete(f"/api/attachments/{bobs}/").status_code == 404
    assert send(alice, general, "garbage", ["not-a-uuid"]).status_code == 400


def test_attachment_is_sent_once_and_only_when_ready(upload, store, alice, general):
    ready = upload(alice, "a.png", png(), "image/png")["attachment"]["id"]
    assert send(alice, general, "first", [ready]).status_code == 201
    again = send(alice, general, "second", [ready])
    assert again.status_code == 409
    pending = upload(alice, "b.png", png(), "image/png", confirm=False)["attachment"]["id"]
    response = send(alice, general, "too early", [pending])
    assert response.status_code == 400
    assert "finished uploading" in response.json()["error"]["detail"]


def test_limits_on_count_and_quota(upload, store, settings, alice, general):
    settings.ATTACHMENT_MAX_PER_MESSAGE = 2
    ids = [
        upload(alice, f"{i}.txt", b"hello\n", "text/plain")["attachment"]["id"] for i in range(3)
    ]
    response = send(alice, general, "too many", ids)
    assert response.status_code == 400
    assert "at most 2 attachments" in response.json()["error"]["detail"]
    settings.ATTACHMENT_USER_QUOTA_BYTES = 20
    over = upload(alice, "more.txt", b"this is over quota\n", "text/plain")
    assert over["status"] == 413 and over["error"]["code"] == "quota_exceeded"


def test_cancel_removes_upload(upload, store, alice):
    started = upload(alice, "a.png", png(), "image/png", confirm=False)
    attachment_id = started["attachment"]["id"]
    assert store.keys() != []
    assert client_for(alice).delete(f"/api/attachments/{attachment_id}/").status_code == 200
    assert Attachment.objects.count() == 0
    assert store.keys() == []


# --- Who may download ------------------------------------------------------------------------


def test_non_member_cannot_download_even_with_exact_url(
    upload, store, alice, bob, mallory, community
):
    secret = channel_create(community=community, name="secret", kind=Channel.Kind.PRIVATE, by=alice)
    confirmed = upload(alice, "plan.png", png(), "image/png")["attachment"]
    message_send(
        channel=secret,
        author=alice,
        body="",
        client_id=uuid.uuid4(),
        attachments=[uuid.UUID(confirmed["id"])],
    )
    urls = [f"/attachments/{confirmed['id']}/", f"/attachments/{confirmed['id']}/thumbnail/"]
    for url in urls:
        assert fetch(client_for(alice), url)[0] == 200
        for outsider in (mallory, bob):  # bob is in the community, not in the private channel
            response = client_for(outsider).get(url)
            assert response.status_code == 404
            assert "Location" not in response
    anonymous = client_for(alice)
    anonymous.logout()
    assert anonymous.get(urls[0])["Location"].startswith("/accounts/login/")


def test_deleted_message_attachments_are_not_served(upload, store, alice, bob, general):
    confirmed = upload(alice, "oops.png", png(), "image/png")["attachment"]
    message = message_send(
        channel=general,
        author=alice,
        body="",
        client_id=uuid.uuid4(),
        attachments=[uuid.UUID(confirmed["id"])],
    ).message
    assert fetch(client_for(bob), f"/attachments/{confirmed['id']}/")[0] == 200
    message_delete(message=message, by=alice)
    assert client_for(bob).get(f"/attachments/{confirmed['id']}/").status_code == 404
    item = client_for(bob).get(f"/api/channels/{general.id}/messages/").json()["messages"][-1]
    assert item["attachments"] == [] and "attachment" not in item["html"]
    # Moderators still find it in admin until it is purged.
    assert Attachment.objects.filter(id=confirmed["id"], message=message).exists()


# --- Storage down ----------------------------------------------------------------------------


def test_s3_down_gives_clear_error_and_chat_keeps_working(
    settings, s3_endpoint, closed_port, alice, bob, general
):
    use_s3(settings, f"http://127.0.0.1:{closed_port}", "hobbies-down")
    client = client_for(alice)
    started = client.post(
        "/api/attachments/",
        {"name": "a.png", "size": 10, "content_type": "image/png"},
        content_type="application/json",
    )
    assert started.status_code == 201  # signing a POST needs no network
    with pytest.raises(requests.ConnectionError):
        requests.post(started.json()["upload"]["url"], data={}, timeout=3)
    confirm = client.post(f"/api/attachments/{started.json()['attachment']['id']}/confirm/")
    assert confirm.status_code == 503
    assert confirm.json()["error"] == {
        "code": "storage_unavailable",
        "detail": "File storage is unavailable right now; try the upload again later.",
    }
    assert send(alice, general, "still chatting").status_code == 201
    page = client_for(bob).get(general.get_absolute_url())
    assert page.status_code == 200 and "still chatting" in page.content.decode()


# --- Purge -----------------------------------------------------------------------------------


def test_purge_removes_stale_uploads_and_says_what(upload, store, alice, general, capsys):
    stale = upload(alice, "forgotten.png", png(), "image/png")["attachment"]["id"]
    fresh = upload(alice, "fresh.png", png(), "image/png")["attachment"]["id"]
    sent = upload(alice, "sent.png", png(), "image/png")["attachment"]["id"]
    send(alice, general, "", [sent])
    day_ago = timezone.now() - timedelta(days=1, minutes=1)
    Attachment.objects.filter(id__in=[stale, sent]).update(created_at=day_ago)
    keys_before = len(store.keys())

    call_command("purge_attachments")
    out = capsys.readouterr().out
    assert "forgotten.png" in out and "never sent" in out
    assert "Removed 1 attachment(s)" in out
    assert set(Attachment.objects.values_list("id", flat=True)) == {
        uuid.UUID(fresh),
        uuid.UUID(sent),
    }
    assert len(store.keys()) == keys_before - 2  # the image and its thumbnail

    call_command("purge_attachments")
    assert "Removed 0 attachment(s)" in capsys.readouterr().out


def test_purge_removes_files_of_long_deleted_messages(upload, store, alice, general, capsys):
    confirmed = upload(alice, "gone.png", png(), "image/png")["attachment"]["id"]
    message = message_send(
        channel=general,
        author=alice,
        body="",
        client_id=uuid.uuid4(),
        attachments=[uuid.UUID(confirmed)],
    ).message
    message_delete(message=message, by=alice)
    call_command("purge_attachments")
    assert Attachment.objects.count() == 1  # kept for moderators a while
    Message.objects.filter(id=message.id).update(deleted_at=timezone.now() - timedelta(days=31))
    call_command("purge_attachments")
    assert "message deleted" in capsys.readouterr().out
    assert Attachment.objects.count() == 0
    assert store.keys() == []


# --- Hot path --------------------------------------------------------------------------------


def test_history_query_count_is_fixed(upload, store, alice, bob, general):
    for i in range(2):
        ids = [
            upload(alice, f"{i}-{j}.png", png(), "image/png")["attachment"]["id"] for j in range(2)
        ]
        send(alice, general, f"batch {i}", ids)
    client = client_for(bob)
    url = f"/api/channels/{general.id}/messages/"
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for i in range(6):
        ids = [upload(alice, f"more{i}.png", png(), "image/png")["attachment"]["id"]]
        send(alice, general, f"more {i}", ids)
    client.get(url)  # stores the new messages' renderings
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    assert sum(len(m["attachments"]) for m in response.json()["messages"]) == 10
    assert len(many.captured_queries) == len(few.captured_queries) <= 8


# --- Live ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_attachments_reach_other_members_live(upload, store, connect, alice, bob, general):
    confirmed = await database_sync_to_async(upload)(alice, "live.png", png(), "image/png")
    a, b = await connect(alice), await connect(bob)
    await b.subscribe(general.id)
    client_id = str(uuid.uuid4())
    await a.send(
        {
            "type": "message.send",
            "channel": general.id,
            "client_id": client_id,
            "body": "",
            "attachments": [confirmed["attachment"]["id"]],
        }
    )
    ack = await a.recv_type("message.ack")
    pushed = (await b.recv_type("message.new"))["message"]
    assert pushed["id"] == ack["message"]["id"]
    [item] = pushed["attachments"]
    assert item["name"] == "live.png" and item["is_image"]
    assert re.search(
        r'<img class="attachment__thumb" src="/attachments/[0-9a-f-]+/thumbnail/"', pushed["html"]
    )
    await a.send(
        {
            "type": "message.send",
            "channel": general.id,
            "client_id": str(uuid.uuid4()),
            "body": "",
            "attachments": [str(uuid.uuid4())],
        }
    )
    error = await a.recv_type("error")
    assert error["code"] == "not_found"


@pytest.mark.parametrize("store", ["local"], indirect=True)
def test_local_upload_far_larger_than_announced_is_refused_unread(store, alice):
    client = client_for(alice)
    started = client.post(
        "/api/attachments/",
        {"name": "small.txt", "size": 5, "content_type": "text/plain"},
        content_type="application/json",
    ).json()
    status = store.put(started, b"x" * (512 * 1024), client)
    assert status == 400
    assert store.keys() == []
