"""Signals accounts sends for the apps above it to act on (sent inside the transaction)."""

from django.dispatch import Signal

# A user's profile exists (first sign-in, sign-up or any later `profile_ensure`); `user=`.
# Receivers provision their side of the user idempotently (the messaging backend's user).
user_provisioned = Signal()

# What people see of `user=` changed (display name): renderings that show it are stale.
profile_changed = Signal()
