"""Signals communities sends for the apps above it (chat) to act on.

Each is sent inside the transaction of the change, so a receiver's writes commit or roll back
with it. Receivers are connected in their app's `AppConfig.ready()`.
"""

from django.dispatch import Signal

# A community was created (`community=`, `by=`): chat gives it its first channel.
community_created = Signal()
# `user=` became a member of `community=`: chat adds them to its open channels.
member_joined = Signal()
# `user=` stopped being a member of `community=` (left or removed): chat takes them out of its
# channels and closes their subscriptions at once.
member_left = Signal()
# `user=` of `community=` was timed out, banned, or their timeout ended (`kind=` "timeout",
# "ban", "timeout_end"; `until=`): chat tells their sockets.
member_restricted = Signal()
# `user=`'s role in `community=` changed from `before=` to `role=`: chat mirrors moderators to
# the messaging backend.
member_role_changed = Signal()
# `user=`'s ban from `community=` was lifted: chat lifts it on the messaging backend.
member_unbanned = Signal()
