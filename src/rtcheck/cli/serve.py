"""``rtcheck serve``: the QA dashboard and REST API over the results database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtcheck.cli._common import (
    EXIT_OK,
    Commands,
    db_option,
    db_url,
    existing_database,
    port,
    shown_url,
)
from rtcheck.errors import UsageError


def add_parser(commands: Commands) -> None:
    """Add the command's parser to ``commands``."""
    parser = commands.add_parser(
        "serve",
        epilog=(
            "examples:\n"
            "  rtcheck serve --db results.db      (then open http://127.0.0.1:8080)\n"
            "  rtcheck serve --db postgresql+psycopg://qa@dbhost/rtcheck --host 0.0.0.0 "
            "--token-file token.txt"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="the QA dashboard and REST API over the results database",
        description="Serve the dashboard (plans, a plan with its report and history, limits "
        "across the archive, protocol what-if, checking an uploaded plan) and its REST API "
        "(OpenAPI description at /openapi.json). Listens on 127.0.0.1 unless told otherwise; "
        "on another address it needs --token-file, and every request then carries the token.",
    )
    db_option(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=8080, help="TCP port (default 8080)")
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="file holding the token every request must carry (needed beyond loopback)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=int,
        default=512,
        metavar="MB",
        help="largest plan upload, uncompressed (default 512)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another host name the server is reached by (a DNS name or proxy's); requests "
        "naming any other host are refused",
    )
    parser.add_argument(
        "--check-workers",
        type=int,
        default=1,
        metavar="N",
        help="processes checking uploaded plans at once (default 1); 4 more wait, beyond "
        "that a check is refused with 503",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rtcheck serve``; its exit status."""
    try:
        import uvicorn

        from rtcheck.web.app import ServeSettings, create_app
        from rtcheck.web.uploads import UploadLimits
    except ImportError as exc:
        raise UsageError(
            f"serve needs the serve extra ({exc.name} is missing): pip install 'rtcheck[serve]'"
        ) from None
    loopback = args.host in ("127.0.0.1", "::1", "localhost")
    token = None
    if args.token_file:
        token = _read_token(args.token_file)
    elif not loopback:
        raise UsageError(f"serving on {args.host} needs --token-file (who may see the results)")
    if args.max_upload_mb < 1:
        raise UsageError("--max-upload-mb must be at least 1")
    url = existing_database(db_url(args.db))
    if not 1 <= args.check_workers <= 64:
        raise UsageError("--check-workers must be from 1 to 64")
    for name in args.allowed_host:
        if not name or any(c in name for c in "/@ \t\r\n"):
            raise UsageError(f"--allowed-host {name!r}: give a host name, without port or path")
    from rtcheck.web.guard import GuardSettings

    settings = ServeSettings(
        url,
        token,
        UploadLimits(max_bytes=args.max_upload_mb * 2**20),
        allowed_hosts=GuardSettings.hosts_for(args.host, args.allowed_host),
        check_workers=args.check_workers,
    )
    app = create_app(settings)
    from rtcheck import logs

    logs.configure()
    print(f"rtcheck serve: http://{args.host}:{args.port}/ over {shown_url(url)}", file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except SystemExit:  # uvicorn exits when the address is taken; it has said why
        raise UsageError(f"cannot serve on {args.host}:{args.port}") from None
    return EXIT_OK


#: The largest token file read (bytes): a token is a line of a few dozen characters.
MAX_TOKEN_BYTES = 4096


def _read_token(token_file: str) -> str:
    """The token in ``token_file``: a file only its owner may read (as ssh requires of a
    private key), of UTF-8 text, 16 characters or more."""
    from rtcheck.dicom.files import is_regular_file

    path = Path(token_file)
    mode = path.stat().st_mode
    if not path.is_dir() and not is_regular_file(path):  # a pipe's read would never end
        raise UsageError(f"--token-file {token_file}: not a regular file (a pipe or device)")
    if path.is_file() and mode & 0o077:
        raise UsageError(
            f"--token-file {token_file}: readable by other users (mode {mode & 0o777:o}); "
            f"run: chmod 600 {token_file}"
        )
    with path.open("rb") as handle:
        data = handle.read(MAX_TOKEN_BYTES + 1)
    if len(data) > MAX_TOKEN_BYTES:
        raise UsageError(f"--token-file {token_file}: more than {MAX_TOKEN_BYTES} bytes")
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UsageError(f"--token-file {token_file}: not UTF-8 text") from None
    if len(token) < 16:
        raise UsageError(f"--token-file {token_file}: a token of 16 characters or more")
    return token
