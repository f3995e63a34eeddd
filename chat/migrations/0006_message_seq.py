"""Gapless positions of messages in their channel (`Message.seq`, `Channel.last_seq`)."""

from django.db import migrations, models
from django.db.models import Q

BATCH = 2000


def number_messages(apps, schema_editor):
    """Existing messages get positions 1, 2, 3… in id order (the order they committed in)."""
    Channel = apps.get_model("chat", "Channel")
    Message = apps.get_model("chat", "Message")
    for channel in Channel.objects.only("id").iterator():
        seq = 0
        batch = []
        for message in Message.objects.filter(channel=channel).order_by("id").only("id"):
            seq += 1
            message.seq = seq
            batch.append(message)
            if len(batch) == BATCH:
                Message.objects.bulk_update(batch, ["seq"])
                batch = []
        if batch:
            Message.objects.bulk_update(batch, ["seq"])
        Channel.objects.filter(id=channel.id).update(last_seq=seq)


class Migration(migrations.Migration):
    dependencies = [("chat", "0005_community_moved")]

    operations = [
        migrations.AddField(
            model_name="channel", name="last_seq", field=models.BigIntegerField(default=0)
        ),
        migrations.AddField(
            model_name="message", name="seq", field=models.BigIntegerField(null=True)
        ),
        migrations.RunPython(number_messages, migrations.RunPython.noop),
    ]
