"""Every message has its position; positions are unique in a channel (a separate migration, so
the numbering's row updates have committed before the table is altered)."""

from django.db import migrations, models
from django.db.models import Q


class Migration(migrations.Migration):
    dependencies = [("chat", "0006_message_seq")]

    operations = [
        migrations.AlterField(model_name="message", name="seq", field=models.BigIntegerField()),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(
                fields=("channel", "seq"), name="message_channel_seq_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.CheckConstraint(condition=Q(seq__gt=0), name="message_seq_positive"),
        ),
    ]
