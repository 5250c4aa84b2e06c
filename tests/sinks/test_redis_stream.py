"""The Redis Streams sink against the real Redis on 127.0.0.1 (database 13, see tests.services).

What Redis really does that these tests pin down: ``XADD MAXLEN ~ n`` trims whole stream nodes
only (``stream-node-max-entries``, 100 by default), so 50 entries with ``maxlen`` 10 are not
trimmed at all and the bound checked is ``maxlen`` plus one node; and a server without
``requirepass`` (its ``default`` user has ``nopass``) accepts any password for that user, so a
wrong password is only refused for a real ACL user, which one test creates and deletes again.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any, cast

import orjson
import pytest
import redis

from tests.services import closed_port, redis_db_url, redis_sentinel
from worker.errors import ConfigurationError, PermanentSinkError, TransientSinkError
from worker.routing.notification import build_notification, delivery_key
from worker.sinks.redis_stream import GUARD_TTL_S, RedisStreamNotifier, build, guard_key

STREAM = "cables"
PASSWORD = "Rs-pa55word-test-only"
PASSWORD_ENV = "CABLE_INGEST_TEST_REDIS_STREAM_PASSWORD"

Make = Callable[..., RedisStreamNotifier]


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The URL of the flushed test database."""
    with redis_db_url() as url:
        yield url


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client of the test database, to look at what the sink wrote."""
    client = redis.Redis.from_url(redis_url, decode_responses=False)
    yield client
    client.close()


@pytest.fixture
def make(redis_url: str) -> Iterator[Make]:
    """Build notifiers of sink ``stream`` from option overrides; closed at teardown."""
    built: list[RedisStreamNotifier] = []

    def factory(**overrides: Any) -> RedisStreamNotifier:
        notifier = build("stream", {"url": redis_url, "stream": STREAM, **overrides})
        built.append(notifier)
        return notifier

    yield factory
    for notifier in built:
        notifier.close()


def _notification(n: int = 1, classification: str | None = "CONFIDENTIAL") -> dict[str, Any]:
    record = {
        "reference_id": f"06ALMATY{n}",
        "date": "2006-02-14T11:33:00Z",
        "origin": "Embassy Almaty",
        "classification": classification,
        "subject": f"SUBJECT {n}",
        "tags": [{"code": "KZ", "kind": "country"}],
    }
    return build_notification(record, message_id=f"m{n}", sink="stream", rule="everything")


def _entries(admin: redis.Redis) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of the stream, oldest first."""
    return cast(list[tuple[bytes, dict[bytes, bytes]]], admin.xrange(STREAM))


def test_notification_is_added_with_its_fields(make: Make, admin: redis.Redis) -> None:
    """One send adds one entry holding key, reference_id, classification and the JSON document,
    and a guard key that names the entry and expires within seven days."""
    notification = _notification()
    key = delivery_key("m1", "stream")
    make().send(notification, key)
    [(entry_id, fields)] = _entries(admin)
    assert fields[b"key"] == key.encode()
    assert fields[b"reference_id"] == b"06ALMATY1"
    assert fields[b"classification"] == b"CONFIDENTIAL"
    assert orjson.loads(fields[b"notification"]) == notification
    assert admin.get(guard_key(STREAM, key)) == entry_id
    assert 0 < admin.ttl(guard_key(STREAM, key)) <= GUARD_TTL_S


def test_missing_classification_is_an_empty_field(make: Make, admin: redis.Redis) -> None:
    """A cable without a classification gets an empty classification field, not an error."""
    make().send(_notification(classification=None), "m1:stream")
    [(_entry_id, fields)] = _entries(admin)
    assert fields[b"classification"] == b""


def test_same_key_twice_adds_one_entry(make: Make, admin: redis.Redis) -> None:
    """A redelivery, rebuilt later and sent after a reconnect or by another notifier (another
    worker process), adds no second entry: the guard lives on the server."""
    first = make()
    first.send(_notification(), "m1:stream")
    first.close()
    first.send(_notification(), "m1:stream")  # a new connection, a new sent_at
    make().send(_notification(), "m1:stream")
    make().send(_notification(2), "m2:stream")
    assert [fields[b"key"] for _id, fields in _entries(admin)] == [b"m1:stream", b"m2:stream"]


def test_maxlen_trims_approximately(make: Make, admin: redis.Redis) -> None:
    """With maxlen 10, 300 sends leave at least 10 and at most 10 plus one stream node of
    entries (approximate trimming drops whole nodes only)."""
    config = cast(dict[str, str], admin.config_get("stream-node-max-entries"))
    node = int(config.get("stream-node-max-entries", "100"))
    notifier = make(maxlen=10)
    for n in range(300):
        notifier.send(_notification(n), f"m{n}:stream")
    assert 10 <= admin.xlen(STREAM) <= 10 + node < 300


def test_closed_port_is_transient_and_hides_password(make: Make) -> None:
    """Nothing listening is a TransientSinkError, raised on send (build connects nothing), whose
    message shows the URL with its password redacted."""
    notifier = make(url=f"redis://:{PASSWORD}@127.0.0.1:{closed_port()}/13", timeout_s=2)
    with pytest.raises(TransientSinkError, match=r"ConnectionError") as caught:
        notifier.send(_notification(), "m1:stream")
    assert PASSWORD not in str(caught.value)
    assert ":***@127.0.0.1" in str(caught.value)


def test_stream_key_holding_a_string_is_permanent(make: Make, admin: redis.Redis) -> None:
    """A stream name whose key holds a string is a PermanentSinkError (WRONGTYPE), and the
    failed XADD leaves no guard behind, so the notification is sent once the key is fixed."""
    admin.set(STREAM, "not a stream")
    notifier = make()
    with pytest.raises(PermanentSinkError, match="WRONGTYPE"):
        notifier.send(_notification(), "m1:stream")
    assert not admin.exists(guard_key(STREAM, "m1:stream"))
    admin.delete(STREAM)
    notifier.send(_notification(), "m1:stream")
    assert admin.xlen(STREAM) == 1


@pytest.fixture
def acl_user(admin: redis.Redis) -> Iterator[str]:
    """A Redis ACL user with password PASSWORD, deleted afterwards; skipped when ACLs cannot be
    changed (an older or locked-down server)."""
    user = f"cable-ingest-test-{secrets.token_hex(4)}"
    try:
        admin.acl_setuser(
            user, enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"], commands=["+@all"]
        )
    except redis.ResponseError as exc:
        pytest.skip(f"cannot create an ACL user on this Redis: {exc}")
    yield user
    admin.acl_deluser(user)


def test_password_env_authenticates(
    make: Make,
    admin: redis.Redis,
    acl_user: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The password named by password_env logs the URL's user in, and the entry is added."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    url = redis_url.replace("redis://", f"redis://{acl_user}@", 1)  # the test database
    make(url=url, password_env=PASSWORD_ENV).send(_notification(), "m1:stream")
    assert admin.xlen(STREAM) == 1


def test_wrong_password_is_permanent_and_never_shown(
    make: Make, admin: redis.Redis, acl_user: str, tmp_path: Any
) -> None:
    """A refused password (from password_file) is a PermanentSinkError that does not quote it."""
    wrong = "Wr0ng-pa55word-test-only"
    (tmp_path / "password").write_text(wrong + "\n")
    notifier = make(
        url=f"redis://{acl_user}@127.0.0.1:6379/13", password_file=str(tmp_path / "password")
    )
    with pytest.raises(PermanentSinkError, match="AuthenticationError") as caught:
        notifier.send(_notification(), "m1:stream")
    assert wrong not in str(caught.value)
    assert admin.xlen(STREAM) == 0


def test_default_user_without_requirepass_accepts_any_password(
    make: Make, admin: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a server without requirepass a configured password is accepted (AUTH default <any>
    succeeds for a nopass user), so it cannot catch a misconfiguration there."""
    default = cast(dict[str, Any], admin.acl_getuser("default"))
    if "nopass" not in default["flags"]:
        pytest.skip("this Redis requires a password for its default user")
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    make(password_env=PASSWORD_ENV).send(_notification(), "m1:stream")
    assert admin.xlen(STREAM) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "http://127.0.0.1/", "stream": "s"}, r"sinks\.s1\.options\.url: "),
        ({"url": "redis://127.0.0.1/"}, r"sinks\.s1\.options: .*stream"),
        ({"url": "redis://127.0.0.1/", "stream": "s", "maxlen": 0}, r"options\.maxlen: "),
        ({"url": "redis://127.0.0.1:99999/", "stream": "s"}, r"options\.url: not a valid URL"),
        (
            {"url": "redis://:pw@127.0.0.1/", "stream": "s", "password_env": "X_PW"},
            r"the URL has a password",
        ),
        ({"url": "redis://h/", "stream": "s", "password_env": "CABLE_INGEST_UNSET_X"}, r"unset"),
        ({"url": "sentinel://h1;sentinel://h2/0", "stream": "s"}, r"options\.master_name: "),
        (
            {"url": "sentinel://h1?master_name=a", "stream": "s", "master_name": "b"},
            r"the URL names the master and master_name another",
        ),
        ({"url": "redis://h/", "stream": "s", "master_name": "a"}, r"only for a sentinel://"),
        ({"url": "sentinel://:pw@h1:x", "stream": "s"}, r"options\.url: not a valid URL"),
        (
            {"url": "sentinel://:pw@h1", "stream": "s", "master_name": "m",
             "sentinel_password_env": "CABLE_INGEST_UNSET_X"},
            r"sentinel_password_env: environment variable CABLE_INGEST_UNSET_X",
        ),
    ],
)
def test_bad_options_name_the_key(options: dict[str, Any], message: str) -> None:
    """Malformed options or a missing password are a ConfigurationError naming the key."""
    with pytest.raises(ConfigurationError, match=message) as caught:
        build("s1", options)
    assert ":pw@" not in str(caught.value)


def test_sentinel_url_adds_to_the_primary_with_both_passwords(tmp_path: Any) -> None:
    """With a sentinel:// URL the sink asks the Sentinel (its own password from a file) for
    the primary and adds there (the primary's password from another); a redelivery adds nothing;
    a wrong sentinel password is transient (no primary found) and never shown."""
    with redis_sentinel(tmp_path / "redis", passwords=True) as running:
        assert running.password is not None
        assert running.sentinel_password is not None
        (tmp_path / "redis-pw").write_text(running.password, encoding="utf-8")
        (tmp_path / "sentinel-pw").write_text(running.sentinel_password, encoding="utf-8")
        options = {
            "url": running.url,
            "stream": STREAM,
            "master_name": running.master,
            "password_file": str(tmp_path / "redis-pw"),
            "sentinel_password_file": str(tmp_path / "sentinel-pw"),
        }
        notifier = build("stream", options)
        try:
            notifier.send(_notification(), "m1:stream")
            notifier.send(_notification(), "m1:stream")
        finally:
            notifier.close()
        primary = running.primary()
        try:
            assert primary.xlen(STREAM) == 1
        finally:
            primary.close()
        (tmp_path / "sentinel-pw").write_text("Wr0ng-sentinel-pw", encoding="utf-8")
        refused = build("stream", options)
        try:
            with pytest.raises(TransientSinkError, match="No master found") as caught:
                refused.send(_notification(), "m2:stream")
        finally:
            refused.close()
    assert "Wr0ng-sentinel-pw" not in str(caught.value)
    assert running.password not in str(caught.value)
