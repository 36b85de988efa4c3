from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("sandbox_xurrent", "0003_webhook_failure_streak_and_auto_disable"),
    ]

    operations = [
        migrations.AddField(
            model_name="account",
            name="instance",
            field=models.CharField(
                choices=[("xurrent.com", "xurrent.com"), ("au.xurrent.com", "au.xurrent.com"),
                         ("uk.xurrent.com", "uk.xurrent.com"), ("ch.xurrent.com", "ch.xurrent.com"),
                         ("us.xurrent.com", "us.xurrent.com"), ("xurrent.qa", "xurrent.qa"),
                         ("au.xurrent.qa", "au.xurrent.qa"), ("uk.xurrent.qa", "uk.xurrent.qa"),
                         ("ch.xurrent.qa", "ch.xurrent.qa"), ("us.xurrent.qa", "us.xurrent.qa"),
                         ("xurrent-demo.com", "xurrent-demo.com")],
                default="xurrent.com", max_length=64),
        ),
    ]
