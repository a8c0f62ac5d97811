"""The seed 004 table, for the Django test."""

from django.db import models


class HedgeInstruction(models.Model):
    currency = models.CharField(max_length=3)
    entity = models.CharField(max_length=10)
    amount = models.IntegerField()

    class Meta:
        app_label = "hedging"
        db_table = "hedge_instructions"
