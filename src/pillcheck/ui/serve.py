"""`pillcheck serve` and `python app.py`: build the web app on a catalog and models, then serve it.

``add_parser(subparsers)`` registers the command on the `pillcheck` CLI; ``main`` is the same command alone,
for app.py. Gradio is imported only when serving, so the rest of the CLI stays quick.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pillcheck import config

DEMO_BANNER = config.DEMO_BANNER


def parse_auth(text: str) -> tuple[str, str]:
    """'user:pass' -> (user, pass); the password may contain ':'."""
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD")
    return user, password


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None,
                   help="interface to listen on (default $GRADIO_SERVER_NAME, else 127.0.0.1; 0.0.0.0 for a LAN/container)")
    p.add_argument("--port", type=int, default=None, help="port (default $GRADIO_SERVER_PORT, else 7860)")
    p.add_argument("--share", action="store_true",
                   help="also make a public Gradio link (printed); if it cannot be made, keep serving locally")
    p.add_argument("--auth", type=parse_auth, default=None, metavar="USER:PASSWORD", help="require this login")
    p.add_argument("--db", type=Path, default=None,
                   help=f"catalog database (default: $PILLCHECK_DB, else {config.default_db()})")
    p.add_argument("--models", type=Path, default=None, help=f"models folder (default {config.MODELS_DIR})")
    p.add_argument("--concurrency", type=int, default=None, metavar="N",
                   help="analyses at once (default 2: measured best on 2 cores, bench/bench_serve.py)")
    p.add_argument("--threads", type=int, default=None, metavar="T",
                   help="threads per analysis (default: cores / N, so N analyses do not oversubscribe the cores)")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `serve` on the `pillcheck` CLI."""
    p = subparsers.add_parser("serve", help="the mobile web app and its HTTP API (Gradio)")
    add_arguments(p)
    p.set_defaults(func=cmd_serve)
    return p


def configure_logging() -> None:
    """Operator logs on stderr ($PILLCHECK_LOG_LEVEL, default INFO): what runs where, errors. Never the person's
    photo, file names, medications, profile or searches (tests/test_privacy.py reads them at DEBUG)."""
    level = os.environ.get("PILLCHECK_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "python_multipart", "multipart", "asyncio", "PIL", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def split_cores(concurrency: int | None, threads: int | None, cores: int | None = None) -> tuple[int, int]:
    """(analyses at once, threads each): N analyses share the cores, unless told otherwise (--threads, else
    $PILLCHECK_THREADS)."""
    from pillcheck.inference.session import env_threads
    from pillcheck.ui.app import CONCURRENCY

    n = max(1, concurrency or CONCURRENCY)
    return n, max(1, threads or env_threads() or (cores or os.cpu_count() or 1) // n)


def cmd_serve(args: argparse.Namespace) -> int:
    """Open the catalog first (a missing one is a one-line error, not a broken page), then serve until Ctrl+C."""
    from pillcheck.inference.session import use_threads
    from pillcheck.pipeline import Pipeline

    configure_logging()
    from pillcheck.ui.app import PillcheckApp, launch

    concurrency, threads = split_cores(args.concurrency, args.threads)
    use_threads(threads)
    pipe = Pipeline(db=args.db, models_dir=args.models)
    cat = pipe.catalog
    demo = PillcheckApp(pipe, concurrency=concurrency).blocks()
    _, local_url, share_url = launch(demo, host=args.host, port=args.port, share=args.share, auth=args.auth,
                                     quiet=True, prevent_thread_lock=True)
    print(f"pillcheck: serving the {cat.data} catalog {cat.path} at {local_url} ({concurrency} analyses at once, "
          f"{threads} threads each)", flush=True)
    if cat.data == "demo":
        print(DEMO_BANNER, flush=True)
    if args.share:
        print(f"pillcheck: public link {share_url}" if share_url else
              "pillcheck: the public share link could not be created (offline?); serving locally only", flush=True)
    if not (pipe.models_dir / "detector.onnx").is_file():
        print(f"pillcheck: warning: {pipe.models_dir / 'detector.onnx'} not found; photos will show an error until it "
              "is there", flush=True)
    demo.block_thread()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python app.py [--host] [--port] [--share] [--auth] [--db] [--models]`."""
    parser = argparse.ArgumentParser(prog="app.py", description="pillcheck web app (same as `pillcheck serve`)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    from pillcheck.catalog.db import CatalogError, CatalogMissing

    try:
        return cmd_serve(args)
    except (CatalogMissing, CatalogError) as exc:
        print(f"pillcheck: error: {exc}", file=sys.stderr)
        return 2

