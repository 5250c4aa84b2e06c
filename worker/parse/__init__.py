"""The cable parser: a pure function from raw telegram text to a record dict.

Modules follow the telegram from top to bottom: :mod:`.text` (normalisation), :mod:`.header`
(routing header), :mod:`.classification`, :mod:`.preamble` (E.O., TAGS, SUBJECT, REF,
Classified By), :mod:`.body` (paragraphs, summary, signature); :mod:`.cable` puts them together.
"""

from worker.errors import ParseError

from .cable import parse_cable

__all__ = ["ParseError", "parse_cable"]
