"""Rulebook for Python.

``rulebook.cache``: the coherent cache (``Cache`` and the ``cached`` decorator), with
after-commit invalidation for Django (``rulebook.cache_django``) and SQLAlchemy
(``rulebook.cache_sqlalchemy``).
"""

from rulebook import cache

__all__ = ["cache"]
