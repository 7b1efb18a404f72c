"""Mail that comes back: bounces, complaints and email unsubscribes, and what they do.

``verp`` tags (in :mod:`newsletter.delivery.verp`) say whose message came back;
``classify`` reads a returned message; ``intake`` stores it before it is acknowledged;
``process`` turns a stored message into :class:`~newsletter.inbound.policy.Signal` s;
``policy`` applies each to its reader; ``breaker`` pauses an edition that bounces badly.
"""
