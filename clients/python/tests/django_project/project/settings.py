"""A minimal Django project using ``rulebook.django``; the server's address and token come from
the environment tests/test_django.py sets."""

import os

SECRET_KEY = "rulebook-django-test"
INSTALLED_APPS = ["rulebook.django"]
DATABASES: dict = {}
USE_TZ = True

RULEBOOK = {
    "URL": os.environ["RULEBOOK_TEST_URL"],
    "TOKEN": os.environ.get("RULEBOOK_TEST_TOKEN") or None,
    "TENANT": os.environ.get("RULEBOOK_TEST_TENANT", "default"),
}
