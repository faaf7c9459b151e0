"""What the operator relies on: the health check and the deploy settings."""

import base64
import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import OperationalError, connection

ROOT = Path(__file__).resolve().parent.parent


def test_healthz_answers_ok(anonymous, db):
    response = anonymous.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {body["database"], body["redis"], body["broker"]} == {"ok"}
    assert body["outbox"] == 0
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize("setting", ["REDIS_URL", "CELERY_BROKER_URL"])
def test_healthz_answers_200_degraded_without_redis(anonymous, db, settings, setting):
    """A load balancer keeps sending traffic: every page still renders from
    PostgreSQL and tasks wait in the outbox."""
    setattr(settings, setting, "redis://127.0.0.1:1/0")  # nothing listens there

    response = anonymous.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["redis" if setting == "REDIS_URL" else "broker"].startswith("error")
    assert body["database"] == "ok"


def test_healthz_answers_503_without_postgresql(anonymous, db, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:  # undone before the test's rollback
        patch.setattr(connection, "cursor", refuse)
        response = anonymous.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"] == "error: OperationalError"
    assert body["redis"] == "ok"


def manage(*args, env: dict) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ["PATH"], "DATABASE_URL": f"postgres:///{django_settings.DATABASES['default']['NAME']}"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def production_env() -> dict:
    secret = "".join(secrets.choice(string.ascii_letters + string.digits + "!@#%^&*(-_=+)") for _ in range(60))
    return {
        "DJANGO_SETTINGS_MODULE": "sun_commune.settings",
        "DEBUG": "0",
        "SECRET_KEY": secret,
        "LEDGER_SIGNING_KEY": secrets.token_hex(32),
        "FIELD_ENCRYPTION_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "ID_HASH_KEY": secrets.token_hex(32),
        "ALLOWED_HOSTS": "example.org",
    }


def test_the_production_settings_pass_the_deploy_check():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "LEDGER_SIGNING_KEY", "FIELD_ENCRYPTION_KEYS", "ID_HASH_KEY"])
def test_production_refuses_to_start_without_its_keys(missing):
    env = production_env()
    del env[missing]

    result = manage("check", env=env)

    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr
