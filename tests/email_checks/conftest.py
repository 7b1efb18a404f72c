"""The messages the email checks look at come from the ``sent`` fixture of
tests/sent_messages.py: the demo's digest and notices and the stress digest, as sent, built
once per test module."""
