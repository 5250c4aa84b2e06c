"""``tokens create|list|revoke``: the API tokens of ``cable-ingest serve``, one feed each.

``create`` prints the token once, on stdout alone (``TOKEN=$(cable-ingest tokens create …)``);
only its hash is stored, so a lost token is revoked and replaced, never shown again.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from worker.cli.dependencies import NoTablesError, wait_for_database, wait_for_tables
from worker.cli.help import Subcommands, command
from worker.cli.store import write_json
from worker.model import CLASSIFICATIONS, TOKEN_SCOPES
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.storage.tokens import TokenInfo, TokenStore


def _store(*, write: bool = True) -> TokenStore:
    """The token store: migrated first to write; to read, on tables as they are (nothing
    created; NoTablesError when there are none)."""
    from worker.storage import upgrade
    from worker.storage.tokens import TokenStore

    settings = Settings.from_env()
    if write:
        wait_for_database(settings)
        upgrade(settings.database_url)
    else:
        wait_for_tables(settings)
    return TokenStore(settings.database_url)


def _feed(raw: str) -> str:
    from worker.storage.tokens import check_name

    try:
        return check_name(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _line(info: TokenInfo) -> str:
    when = info.as_dict()
    state = f"revoked {when['revoked_at']}" if info.revoked_at else "live"
    return (
        f"{info.id}  {info.name:<24} {','.join(info.scopes):<20} "
        f"{info.clearance or '-':<20} created {when['created_at']}  "
        f"last used {when['last_used_at'] or 'never'}  {state}"
    )


def cmd_create(args: argparse.Namespace) -> int:
    """Make a token; print it (stdout) and what it allows (stderr)."""
    store = _store()
    try:
        token, info = store.create(args.name, args.scope or ["ingest"], args.clearance)
    finally:
        store.close()
    if args.json:
        write_json({**info.as_dict(), "token": token})
    else:
        print(token)
        print(f"created {_line(info)}", file=sys.stderr)
        print("the token is shown this once; store it now", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List tokens (never their secrets); reading creates and migrates nothing."""
    try:
        store = _store(write=False)
    except NoTablesError as empty:
        print(f"no tokens: {empty}", file=sys.stderr)
        found = []
    else:
        try:
            found = store.list(name=args.name)
        finally:
            store.close()
    if args.json:
        write_json([info.as_dict() for info in found])
    else:
        for info in found:
            print(_line(info))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke a token by id, or every token of a feed; exit 1 when none was live."""
    store = _store()
    try:
        count = store.revoke(token_id=args.id, name=args.feed)
    finally:
        store.close()
    print(f"revoked {count} token{'s' if count != 1 else ''}", file=sys.stderr)
    return 0 if count else 1


def register(sub: Subcommands[argparse.ArgumentParser]) -> None:
    """Add ``tokens create|list|revoke``."""
    tokens = command(
        sub,
        "tokens",
        summary="API tokens of serve: create, list, revoke",
        description="The API tokens of cable-ingest serve, one feed each: a name (stamped on\n"
        "every envelope it posts), scopes (ingest, read, operate) and an optional clearance\n"
        "(the highest classification it may read). Only a hash is stored.",
    )
    actions = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = command(
        actions,
        "create",
        summary="make a token for a feed (printed once, on stdout alone)",
        examples=[
            "TOKEN=$(cable-ingest tokens create feed-a)",
            "cable-ingest tokens create analysts --scope read --clearance CONFIDENTIAL",
        ],
    )
    create.add_argument("name", type=_feed, help="the feed: every envelope's source")
    create.add_argument(
        "--scope",
        action="append",
        choices=TOKEN_SCOPES,
        help="what it may do; repeatable (default: ingest)",
    )
    create.add_argument(
        "--clearance",
        choices=CLASSIFICATIONS,
        metavar="CLASSIFICATION",
        help="highest classification it may read (default: UNCLASSIFIED)",
    )
    create.add_argument("--json", action="store_true", help="print the token and its row as JSON")
    create.set_defaults(func=cmd_create)

    listing = command(
        actions,
        "list",
        summary="every token, revoked ones included (never their secrets)",
        examples=["cable-ingest tokens list", "cable-ingest tokens list --name feed-a --json"],
    )
    listing.add_argument("--name", type=_feed, help="only this feed's")
    listing.add_argument("--json", action="store_true", help="one JSON array of tokens")
    listing.set_defaults(func=cmd_list)

    revoke = command(
        actions,
        "revoke",
        summary="revoke a token (by id) or every token of a feed",
        description="Revoke a token by id, or every token of a feed; exit 1 when none was live.",
        examples=[
            "cable-ingest tokens revoke 4be1c0a97d2e",
            "cable-ingest tokens revoke --feed feed-a",
        ],
    )
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="the token id (the 12 hex digits after cit_)")
    which.add_argument("--feed", type=_feed, help="revoke every token of this feed")
    revoke.set_defaults(func=cmd_revoke)
