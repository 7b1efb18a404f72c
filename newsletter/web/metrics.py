"""Prometheus metrics read from the database, so every web and worker process agrees."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from newsletter.db import session_scope
from newsletter.models import ConsentAction, ConsentEvent, Delivery, DeliveryStatus, Subscription


class DatabaseCollector(Collector):
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def collect(self) -> Iterator[Metric]:
        with session_scope(self.database_url) as session:
            actions = dict(
                session.execute(
                    select(ConsentEvent.action, func.count()).group_by(ConsentEvent.action)
                ).all()
            )
            deliveries = dict(
                session.execute(
                    select(Delivery.status, func.count()).group_by(Delivery.status)
                ).all()
            )
            subscriptions = dict(
                session.execute(
                    select(Subscription.status, func.count()).group_by(Subscription.status)
                ).all()
            )
        for name, action, help_text in (
            ("newsletter_signups", ConsentAction.SIGNUP, "Signups awaiting or past double opt-in."),
            ("newsletter_confirmations", ConsentAction.CONFIRM, "Double opt-in confirmations."),
            ("newsletter_unsubscribes", ConsentAction.UNSUBSCRIBE, "Unsubscribes, any channel."),
        ):
            yield CounterMetricFamily(name, help_text, value=int(actions.get(action, 0)))
        messages = CounterMetricFamily(
            "newsletter_messages", "Digest messages by final outcome.", labels=["status"]
        )
        for status in (DeliveryStatus.SENT, DeliveryStatus.FAILED):
            messages.add_metric([status.value], int(deliveries.get(status, 0)))
        yield messages
        readers = GaugeMetricFamily(
            "newsletter_subscriptions", "Subscriptions by status.", labels=["status"]
        )
        for state, count in sorted(subscriptions.items()):
            readers.add_metric([str(state.value)], int(count))
        yield readers
