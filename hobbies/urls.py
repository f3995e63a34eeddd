from django.conf import settings
from django.contrib import admin
from django.urls import path
from django.views.static import serve

from accounts import views as account_views
from analytics import views as analytics_views
from chat import admin as chat_admin
from chat import moderation_views
from chat import views as chat_views
from communities import views as community_views
from hobbies import health

admin.site.site_header = "Hobbies Community administration"
# Bulk deletion writes past the services (no socket told, no rules kept): actions call services.
admin.site.disable_action("delete_selected")

urlpatterns = [
    path("", community_views.directory, name="directory"),
    path("accounts/login/", account_views.RateLimitedLoginView.as_view(), name="login"),
    path("accounts/logout/", account_views.logout, name="logout"),
    path("accounts/oidc/login/", account_views.OIDCLoginView.as_view(), name="oidc_login"),
    path("accounts/oidc/callback/", account_views.OIDCCallbackView.as_view(), name="oidc_callback"),
    path("accounts/signup/", account_views.signup, name="signup"),
    path("accounts/profile/", account_views.profile, name="profile"),
    path("communities/new/", community_views.community_new, name="community_new"),
    path("c/<slug:slug>/", chat_views.community_page, name="community"),
    path("c/<slug:slug>/join/", community_views.community_join, name="community_join"),
    path("c/<slug:slug>/leave/", community_views.community_leave, name="community_leave"),
    path("c/<slug:slug>/manage/", community_views.community_manage, name="community_manage"),
    path("c/<slug:slug>/manage/channels/", chat_views.channel_new, name="channel_new"),
    path(
        "c/<slug:slug>/manage/analytics/",
        analytics_views.community_page,
        name="community_analytics",
    ),
    path(
        "c/<slug:slug>/manage/analytics/export.csv",
        analytics_views.community_csv,
        name="community_analytics_csv",
    ),
    path("c/<slug:slug>/moderation/", moderation_views.queue_page, name="moderation_queue"),
    path(
        "c/<slug:slug>/moderation/act/",
        moderation_views.moderation_action,
        name="moderation_action",
    ),
    path("c/<slug:slug>/moderation/log/", moderation_views.audit_page, name="moderation_log"),
    path(
        "c/<slug:slug>/moderation/messages/<int:message_id>/",
        moderation_views.removed_message_page,
        name="moderation_message",
    ),
    path("c/<slug:slug>/<slug:name>/", chat_views.channel_page, name="channel"),
    path("c/<slug:slug>/<slug:name>/post/", chat_views.channel_post, name="channel_post"),
    path(
        "c/<slug:slug>/<slug:name>/settings/",
        chat_views.channel_settings,
        name="channel_settings",
    ),
    # Invite codes are URL-safe tokens (`secrets.token_urlsafe`), exactly what `slug` matches.
    path("invite/<slug:code>/", community_views.invite_accept, name="invite"),
    path("messages/<int:message_id>/report/", moderation_views.report_page, name="report"),
    path("api/moderation/", moderation_views.api_moderation, name="api_moderation"),
    path(
        "api/communities/<slug:slug>/moderation/queue/",
        moderation_views.api_queue,
        name="api_moderation_queue",
    ),
    path(
        "api/communities/<slug:slug>/moderation/log/",
        moderation_views.api_audit,
        name="api_moderation_log",
    ),
    path(
        "api/messages/<int:message_id>/moderation/",
        moderation_views.api_message_moderation,
        name="api_message_moderation",
    ),
    path("api/channels/", chat_views.api_channels, name="api_channels"),
    path("api/channels/<int:channel_id>/messages/", chat_views.api_messages, name="api_messages"),
    path("api/attachments/", chat_views.api_attachment_start, name="api_attachment_start"),
    path(
        "api/attachments/<uuid:attachment_id>/",
        chat_views.api_attachment_delete,
        name="api_attachment",
    ),
    path(
        "api/attachments/<uuid:attachment_id>/upload/",
        chat_views.api_attachment_upload,
        name="api_attachment_upload",
    ),
    path(
        "api/attachments/<uuid:attachment_id>/confirm/",
        chat_views.api_attachment_confirm,
        name="api_attachment_confirm",
    ),
    path(
        "attachments/<uuid:attachment_id>/",
        chat_views.attachment_download,
        name="attachment_download",
    ),
    path(
        "attachments/<uuid:attachment_id>/thumbnail/",
        chat_views.attachment_thumbnail,
        name="attachment_thumbnail",
    ),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    # Admin signs in through the site's own log-in (rate-limited, and the provider's button).
    path("admin/login/", account_views.admin_login, name="admin_login"),
    path(
        "admin/moderation/",
        admin.site.admin_view(chat_admin.moderation_overview_view),
        name="admin_moderation_overview",
    ),
    path(
        "admin/analytics/",
        admin.site.admin_view(analytics_views.site_page),
        name="admin_analytics",
    ),
    path(
        "admin/analytics/export.csv",
        admin.site.admin_view(analytics_views.site_csv),
        name="admin_analytics_csv",
    ),
    path("admin/", admin.site.urls),
]

# Avatars on the embedded default; production keeps media in object storage.
urlpatterns += [
    path("media/avatars/<path:path>", serve, {"document_root": settings.MEDIA_ROOT / "avatars"})
]
