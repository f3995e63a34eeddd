"""Django admin for users, their provider identities and the sign-in audit log."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import Identity, Profile, SignIn, User
from hobbies.admin_base import ReadOnlyAdmin


class ProfileInline(admin.StackedInline):
    model = Profile
    can_delete = False
    extra = 0
    readonly_fields = ["display_name", "bio", "avatar", "hobbies"]


@admin.register(User)
class HobbiesUserAdmin(UserAdmin):
    inlines = [ProfileInline]


@admin.register(Identity)
class IdentityAdmin(ReadOnlyAdmin):
    list_display = ["user", "issuer", "subject", "created_at"]
    list_filter = ["issuer"]
    search_fields = ["user__username", "subject"]
    list_select_related = ["user"]


@admin.register(SignIn)
class SignInAdmin(ReadOnlyAdmin):
    list_display = ["at", "user", "method", "ip", "user_agent"]
    list_filter = ["method"]
    search_fields = ["user__username", "ip"]
    date_hierarchy = "at"
    list_select_related = ["user"]
