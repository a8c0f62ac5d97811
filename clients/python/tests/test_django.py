"""``rulebook.django`` in a minimal Django project (tests/django_project) against a real
``rulebook serve``: the registry calls the seeds' code makes, one lazily made client per
process, the ``clear_rules_cache`` command (the server's cache and the replica), and the system
check at startup. Django runs in a child process per test: its settings are made once per
process, and this test session's are the hedging app's (test_seed_004_django.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import rulebook

from conftest import TIMEOUT, TOKEN, Server, free_port

PROJECT = Path(__file__).resolve().parent / "django_project"


def django(server_url: str, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    """``manage.py *args`` in the test project, configured for ``server_url``."""
    env = dict(os.environ, RULEBOOK_TEST_URL=server_url, RULEBOOK_TEST_TOKEN=token or "")
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def shell(server: Server, code: str) -> Any:
    """Runs ``code`` in ``manage.py shell`` (Django set up, settings read); returns what it
    printed last, as JSON."""
    done = django(server.url, "shell", "-c", textwrap.dedent(code))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_registry_calls_answer_as_the_server(server: Server):
    seen = shell(
        server,
        """
        import json, threading
        import rulebook.django as rb

        lazy = rb._client is None  # nothing made at startup (no check ran in `shell -c`)
        clients = []
        threads = [threading.Thread(target=lambda: clients.append(rb.client())) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(json.dumps({
            "lazy": lazy,
            "one_client": len({id(c) for c in clients}) == 1 and clients[0] is rb.client(),
            "spaced": [r["id"] for r in rb.get_rules_for_entry_point("Checkout Terms")],
            "plain": [r["id"] for r in rb.get_rules_for_entry_point("checkout_terms")],
            "first": rb.get_rules_for_entry_point("checkout_terms")[0],
            "none": rb.get_rules_for_entry_point("no such entry point"),
            "ttl": rb.get_value("cache_ttl_seconds", "seconds"),
            "missing": rb.get_value("cache_ttl_seconds", "nope", default="fallback"),
            "enabled": rb.is_enabled("checkout_terms_banner"),
        }))
        """,
    )
    assert seen["lazy"] and seen["one_client"]
    rules = server.http("GET", "/v1/rules?limit=1000")["rules"]
    expected = sorted(
        (r for r in rules if r.get("entry_point") == "checkout_terms" and r["enabled"]),
        key=lambda r: (r["priority"], r["id"]),
    )
    assert expected, "the seeded rules have an entry point to read"
    assert seen["spaced"] == seen["plain"] == [r["id"] for r in expected]
    first = dict(expected[0])
    assert seen["first"] == first
    assert seen["none"] == []
    assert seen["ttl"] == server.http("GET", "/v1/params/cache_ttl_seconds/seconds")["value"]
    assert seen["missing"] == "fallback"
    assert seen["enabled"] is True


def test_a_disabled_rule_leaves_the_entry_points_rules_at_once(server: Server):
    seen = shell(
        server,
        """
        import json
        import rulebook.django as rb

        before = [r["id"] for r in rb.get_rules_for_entry_point("checkout terms")]
        rb.client().rules.disable(before[0])
        after = [r["id"] for r in rb.get_rules_for_entry_point("checkout terms")]
        print(json.dumps({"before": before, "after": after, "enabled": rb.is_enabled(before[0])}))
        """,
    )
    assert seen["after"] == seen["before"][1:]
    assert seen["enabled"] is False


def invalidations(server: Server) -> int:
    counters = server.http("GET", "/v1/cache/stats")["counters"]
    return sum(v for k, v in counters.items() if k.startswith("invalidations_"))


def test_clear_rules_cache_clears_the_server_and_the_replica(server: Server):
    before = invalidations(server)
    done = django(server.url, "clear_rules_cache", "--entry-point", "Home Page Mount")
    assert done.returncode == 0, done.stderr
    assert "Cache invalidated for entry point: home_page_mount" in done.stdout
    assert invalidations(server) > before

    before = invalidations(server)
    done = django(server.url, "clear_rules_cache", "--all")
    assert done.returncode == 0, done.stderr
    assert "invalidated for all entry points" in done.stdout
    assert invalidations(server) > before

    # The replica is reloaded from a fresh snapshot, and still reflects its own writes.
    seen = shell(
        server,
        """
        import json
        from django.core.management import call_command
        import rulebook.django as rb

        before = rb.client().status()["snapshots"]
        rb.client().rules.update_params("cache_ttl_seconds", {"seconds": 77})
        call_command("clear_rules_cache", "--entry-point", "checkout_terms")
        print(json.dumps({"before": before, "after": rb.client().status()["snapshots"],
                          "ttl": rb.get_value("cache_ttl_seconds", "seconds")}))
        """,
    )
    assert seen == {"before": 1, "after": 2, "ttl": 77}


def test_clear_rules_cache_fails_loudly(server: Server):
    done = django(server.url, "clear_rules_cache", "--entry-point", "Home Page!")
    assert done.returncode != 0
    assert "bad_entry_point" in done.stderr

    no_admin = django(server.url, "clear_rules_cache", "--all", token=None)
    assert no_admin.returncode != 0
    assert "401" in no_admin.stderr


def test_the_system_check_reports_the_server_and_the_token(server: Server):
    good = django(server.url, "check")
    assert good.returncode == 0, good.stderr
    assert "no issues" in good.stdout

    away = django(f"http://127.0.0.1:{free_port()}", "check")
    assert away.returncode != 0
    assert "rulebook.E002" in away.stderr and "cannot be reached" in away.stderr

    bad_token = django(server.url, "check", token="not-a-token")
    assert bad_token.returncode != 0
    assert "rulebook.E003" in bad_token.stderr, bad_token.stderr


def test_the_settings_are_checked(tmp_path: Path):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="bad_settings", PYTHONPATH=str(tmp_path))
    (tmp_path / "bad_settings.py").write_text(
        'SECRET_KEY = "x"\nINSTALLED_APPS = ["rulebook.django"]\nRULEBOOK = {"url": "x"}\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode != 0
    assert "rulebook.E001" in done.stderr and "URL" in done.stderr


def test_an_unknown_entry_point_name_is_refused_as_the_server_does(client: rulebook.Client):
    # The Django calls share the client's errors (the classes of the server's codes).
    try:
        client.entry_point_rules("Home Page!")
    except rulebook.BadRequest as error:
        assert error.code == "bad_entry_point"
    else:
        raise AssertionError("a bad entry point name was accepted")
