"""Attacks and hostile input, each reproduced as the attacker or a new reader would try it."""
