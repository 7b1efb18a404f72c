"""Prometheus metrics read from the database, so every web and worker process agrees.

Mail that comes back is reported over the last 30 days per list (by list slug, never by
reader): events by kind and category, the bounce and complaint rates an operator compares
with Gmail's 0.3%, and the readers blocked and inbound messages by status in all. Clicks
and opens are totals over every edition, a person's or a machine's, and nothing finer: no
label names a reader, a link or a list.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.db import session_scope
from newsletter.inbound import intake
from newsletter.inbound.stats import ListRates, blocked_count, list_rates
from newsletter.models import (
    ConsentAction,
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    EditionEngagement,
    InboundMessage,
    InboundStatus,
    MailEvent,
    NewsletterList,
    Subscription,
    TrackedLink,
)

WINDOW_DAYS = 30


class DatabaseCollector(Collector):
    def __init__(self, database_url: str, clock: Clock) -> None:
        self.database_url = database_url
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        with session_scope(self.database_url) as session:
            yield from self._returns(session)
            yield from self._engagement(session)
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

    def _engagement(self, session: Session) -> Iterator[Metric]:
        """Clicks on tracked links and opens, as the flush judged them, summed over all."""
        clicks = session.execute(
            select(
                func.coalesce(func.sum(TrackedLink.human_clicks), 0),
                func.coalesce(func.sum(TrackedLink.machine_clicks), 0),
            )
        ).one()
        opens = session.execute(
            select(
                func.coalesce(func.sum(EditionEngagement.human_opens), 0),
                func.coalesce(func.sum(EditionEngagement.machine_opens), 0),
            )
        ).one()
        for name, help_text, (human, machine) in (
            ("newsletter_link_clicks", "Clicks on tracked story links, by whom.", clicks),
            ("newsletter_opens", "Opens counted by the open pixel (an estimate), by whom.", opens),
        ):
            family = CounterMetricFamily(name, help_text, labels=["by"])
            family.add_metric(["person"], int(human))
            family.add_metric(["machine"], int(machine))
            yield family

    def _returns(self, session: Session) -> Iterator[Metric]:
        """What came back: read in the scrape's own transaction, like the figures above."""
        now = self.clock()
        slugs: dict[int | None, str] = dict(
            session.execute(select(NewsletterList.id, NewsletterList.slug)).all()
        )
        events = GaugeMetricFamily(
            "newsletter_mail_events_30d",
            "Mail events (bounces, complaints, email unsubscribes, ...) of the last 30 days.",
            labels=["list", "kind", "category"],
        )
        for list_id, kind, category, count in session.execute(
            select(MailEvent.list_id, MailEvent.kind, MailEvent.category, func.count())
            .where(MailEvent.created_at >= now - timedelta(days=WINDOW_DAYS))
            .group_by(MailEvent.list_id, MailEvent.kind, MailEvent.category)
        ):
            events.add_metric([slugs.get(list_id, ""), kind.value, category], int(count))
        yield events
        rates: dict[str, ListRates] = {
            slug: list_rates(session, list_id, now=now, days=WINDOW_DAYS)
            for list_id, slug in slugs.items()
            if list_id is not None
        }
        bounces = GaugeMetricFamily(
            "newsletter_list_bounce_rate_30d",
            "Share of the list's messages of the last 30 days that bounced, hard or soft.",
            labels=["list", "category"],
        )
        complaints = GaugeMetricFamily(
            "newsletter_list_complaint_rate_30d",
            "Share of the list's messages of the last 30 days reported as spam "
            "(Gmail refuses bulk mail at 0.003).",
            labels=["list"],
        )
        for slug, rate in sorted(rates.items()):
            bounces.add_metric([slug, "hard"], rate.hard_bounce_rate)
            bounces.add_metric([slug, "soft"], rate.soft_bounce_rate)
            complaints.add_metric([slug], rate.complaint_rate)
        yield bounces
        yield complaints
        yield GaugeMetricFamily(
            "newsletter_blocked_readers",
            "Readers never mailed: dead addresses and complaints.",
            value=blocked_count(session),
        )
        inbound = dict(
            session.execute(
                select(InboundMessage.status, func.count())
                # Spent signature tokens are bookkeeping, not mail that came back.
                .where(~InboundMessage.source.endswith(intake.SPENT_SOURCE_SUFFIX))
                .group_by(InboundMessage.status)
            ).all()
        )
        messages = GaugeMetricFamily(
            "newsletter_inbound_messages",
            "Returned messages and provider events stored, by processing status.",
            labels=["status"],
        )
        for status in InboundStatus:
            messages.add_metric([status.value], int(inbound.get(status, 0)))
        yield messages
