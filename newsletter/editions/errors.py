"""What goes wrong with an edition, in words an editor understands.

::

    EditionError            the edition cannot do what was asked (the web answers 409)
     ├── EditionNotFound    there is no such edition (404)
     └── TransitionError    its status does not allow that move (409)
"""

from __future__ import annotations


class EditionError(ValueError):
    """The edition cannot do what was asked in its current state; the message says why."""


class EditionNotFound(EditionError):
    """There is no edition with that ID."""


class TransitionError(EditionError):
    """The edition's status does not allow the change; the message says what it is now."""


__all__ = ["EditionError", "EditionNotFound", "TransitionError"]
