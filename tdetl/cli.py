"""``tdetl run | bench | inspect | verify …``: taosX-compatible flags; one-line errors and non-zero exit on failure."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .api import inspect, start, verify
from .drivers import as_dsn, describe_drivers
from .drivers.taos.spool import describe_cache
from .errors import ConfigError, TdetlError
from .progress import Summary
from .quality import describe as describe_situations
from .request import RunRequest
from .tune import bench
from .tune import report as bench_report
from .version import __version__


def _positive(text: str) -> int:
    """A whole number >= 1 (``-j 0`` would read nothing, ``--batch-rows 0`` never fill a batch)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def _values(least: int) -> Callable[[str], list[int]]:
    """Comma-separated whole numbers >= ``least`` (the settings ``tdetl bench`` tries)."""
    def parse(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a list of whole numbers, e.g. 1,2,4") from None
        low = [v for v in values if v < least]
        if low:
            raise argparse.ArgumentTypeError(f"{low[0]} is not >= {least}")
        return list(dict.fromkeys(values))
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, as every other tdetl error (argparse prints its usage first)."""
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} -h lists the options)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tdetl", description="Columnar ETL for TDengine.")
    p.add_argument("-V", "--version", action="version", version=f"tdetl {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="move data from one DSN to another")
    r.add_argument("-f", "--from", dest="source", required=True, help="source DSN")
    r.add_argument("-t", "--to", dest="target", required=True, help="target DSN")
    r.add_argument("-p", "--parser", help="parser config: JSON text or @file")
    r.add_argument("-T", "--transform", action="append", default=[], help="add-tag / rename rule (repeatable)")
    r.add_argument("-j", "--jobs", type=_positive, default=None,
                   help="parallel readers (default: 4 for a TDengine source, else 1)")
    r.add_argument("--on-error", default="error", help="bad records: error (default), drop, archive:<file>")
    r.add_argument("--on", action="append", default=[], metavar="SITUATION=CHOICE",
                   help="what to do in a situation, e.g. ts-null=drop, name-too-long=truncate (repeatable;"
                        " `tdetl situations` lists them)")
    r.add_argument("--state", metavar="FILE", help="keep the checkpoint in FILE after every flush; a rerun with the"
                   " same FILE resumes an interrupted run (removed when the run finishes)")
    r.add_argument("--cluster", metavar="ADDRESS", help="spread the run over a Ray cluster: ray://head:10001,"
                   " a Ray address, or local (the ray extra)")
    r.add_argument("--batch-rows", type=_positive, default=None, help="rows per batch (default 1048576)")
    r.add_argument("--limit", type=_positive, metavar="ROWS", help="stop after ROWS rows: a sample (what is not"
                   " read stays to do)")
    for q in (r,):
        q.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug, -vvv trace")
        q.add_argument("-q", "--quiet", action="count", default=0, help="-q no progress, -qq no summary")

    b = sub.add_parser("bench", help="run a sample of a source into a scratch target with a few settings each;"
                       " print rows/s, RSS and the flags of the fastest")
    b.add_argument("-f", "--from", dest="source", required=True, help="source DSN (read, never changed)")
    b.add_argument("-t", "--to", dest="target", required=True,
                   help="taos://, taos+ws:// or local: target: each trial writes a scratch database on its server"
                        " (or a scratch directory beside it), removed afterwards")
    b.add_argument("-p", "--parser", help="parser config for sources that need one")
    b.add_argument("--rows", type=_positive, default=1_000_000, help="rows per trial (default 1000000)")
    b.add_argument("--runs", type=_positive, default=1, help="trials per setting; the best counts (default 1)")
    b.add_argument("-j", "--jobs", type=_values(1), help="readers to try, e.g. 1,2,4 (default 1,4)")
    b.add_argument("--writers", type=_values(1), help="taos targets: writing connections to try (default 2,4,8)")
    b.add_argument("--batch-size", type=_values(0), help="taos targets: rows per raw block to try (0: no limit)")
    b.add_argument("--level", type=_values(-7), help="local targets: zstd levels to try (default 1,3)")
    b.add_argument("-v", "--verbose", action="count", default=0)

    v = sub.add_parser("verify", help="compare two endpoints table by table (rows, time range, tags, checksum)")
    v.add_argument("-f", "--from", dest="source", required=True, help="one endpoint's DSN")
    v.add_argument("-t", "--to", dest="target", required=True, help="the other endpoint's DSN")
    v.add_argument("--start", help="compare rows with ts >= start (RFC 3339 with a zone)")
    v.add_argument("--end", help="compare rows with ts < end (RFC 3339 with a zone)")
    v.add_argument("--json", action="store_true", help="print JSON")
    v.add_argument("-v", "--verbose", action="count", default=0)

    d = sub.add_parser("drivers", help="list the drivers, or one driver's parameters")
    d.add_argument("name", nargs="?", help="a driver: its parameters with forms and defaults")
    d.add_argument("-v", "--verbose", action="count", default=0)

    s = sub.add_parser("situations", help="list the data-quality situations --on takes, with their choices")
    s.add_argument("-v", "--verbose", action="count", default=0)

    c = sub.add_parser("cache", help="show what waits in a TDengine target's write cache (--on unreachable=cache)")
    c.add_argument("dsn", help="the target DSN (host, port and database name its cache)")
    c.add_argument("--dir", help="the cache directory, when the run named one (--on cache-dir=...)")
    c.add_argument("-v", "--verbose", action="count", default=0)

    sv = sub.add_parser("serve", help="run tasks as a service with a REST API (needs the serve extra)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=6050, help="port (default 6050)")
    sv.add_argument("--data-dir", default="~/.local/share/tdetl", help="task definitions, state and logs")
    sv.add_argument("--token-file", metavar="FILE", help="read the token every call must carry from FILE (or set"
                    " $TDETL_SERVE_TOKEN; default: made on first start, kept 0600 as <data-dir>/token)")
    sv.add_argument("--token", default=None, help="the token itself (visible in ps: prefer --token-file)")
    sv.add_argument("--files", metavar="DIR", action="append", default=[],
                    help="a directory tasks may read and write files in (repeatable; default <data-dir>/files;"
                         " relative paths in tasks resolve against the first)")
    sv.add_argument("--max-running", type=_positive, metavar="N",
                    help="tasks running at once; the rest wait as queued (default: 4 per CPU)")
    sv.add_argument("--cluster", metavar="ADDRESS", help="run each task's partitions on a Ray cluster (as run does)")
    sv.add_argument("-v", "--verbose", action="count", default=0)

    i = sub.add_parser("inspect", help="show tables, schemas, row counts and time ranges of a source")
    i.add_argument("dsn")
    i.add_argument("-p", "--parser", help="parser config for sources that need one (csv)")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.add_argument("-v", "--verbose", action="count", default=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    so_far = Summary()  # a run counts into it, so an interrupt can say what was done
    request: RunRequest | None = None
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S%z", stream=sys.stderr)
    try:
        if args.command == "drivers":
            print(describe_drivers(args.name))
            return 0
        if args.command == "serve":
            return _serve(args)
        if args.command == "cache":
            print(describe_cache(as_dsn(args.dsn), args.dir))
            return 0
        if args.command == "bench":
            chosen = {"jobs": args.jobs, "writers": args.writers, "batch-size": args.batch_size, "level": args.level}
            print(bench_report(bench(args.source, args.target, args.parser, args.rows, chosen, args.runs)))
            return 0
        if args.command == "situations":
            print(describe_situations())
            return 0
        if args.command == "inspect":
            from .describe import render  # pyarrow.compute: only for this command

            info = inspect(args.dsn, parser=args.parser)
            print(json.dumps(info, indent=1, default=str) if args.json else render(info))
            return 0
        if args.command == "verify":
            from .compare import render

            report = verify(args.source, args.target, start=args.start, end=args.end)
            print(json.dumps(report, indent=1, default=str) if args.json else
                  render(report, as_dsn(args.source).masked(), as_dsn(args.target).masked()))
            return 1 if report["differences"] else 0
        request = RunRequest(args.source, args.target, args.parser, tuple(args.transform), args.jobs, args.on_error,
                             args.on, args.batch_rows, args.state, args.cluster, None if args.quiet == 0 else False,
                             limit=args.limit)
        summary = start(request, so_far)
        if args.quiet < 2:
            print(f"tdetl: {as_dsn(args.source).masked()} -> {as_dsn(args.target).masked()}: {summary.line()}",
                  file=sys.stderr)
            for ex in summary.skipped:
                print(f"tdetl: skipped: {ex}", file=sys.stderr)
        return _status(summary)
    except TdetlError as e:
        print(f"tdetl: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        said = f" after writing {so_far.rows_written:,} rows" if so_far.rows_written else ""
        how = request.resume_hint() if request is not None else ""
        print(f"tdetl: interrupted{said}{'; ' + how if how else ''}", file=sys.stderr)
        return 130
    except Exception as e:  # a bug or an unexpected library error: still one line, traceback with -vv
        if args.verbose >= 2:
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"tdetl: error: {type(e).__name__}: {msg}", file=sys.stderr)
        return 1


EXIT_PENDING = 3  # the run ended, but rows it acknowledged wait in the write cache, not in the target yet


def _status(summary: Summary) -> int:
    if summary.complete:
        return 0
    print(f"tdetl: incomplete: {summary.rows_pending:,} rows wait in the write cache until the target answers;"
          " run again (into the same host, port and database) to replay them; `tdetl cache <target>` shows them",
          file=sys.stderr)
    return EXIT_PENDING


def _serve(args: argparse.Namespace) -> int:
    import ipaddress
    import os
    import socket
    from pathlib import Path

    try:
        import uvicorn

        from .serve.app import create_app
        from .serve.guard import TOKEN_ENV, token_for
    except ImportError as e:
        raise ConfigError(f"tdetl serve needs the serve extra (pip install 'tdetl[serve]'):"
                          f" {e.name} is missing") from None
    data = Path(args.data_dir).expanduser()
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not (args.token or args.token_file or os.environ.get(TOKEN_ENV)):
        raise ConfigError(f"--host {args.host}: binding beyond loopback needs a token chosen by you"
                          " (--token-file or $TDETL_SERVE_TOKEN)")
    try:
        token, told = token_for(data, args.token, args.token_file)
    except OSError as e:
        raise ConfigError(str(e)) from None
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"--port {args.port}: cannot listen on {args.host}:{args.port}: {e.strerror}") from None
    app = create_app(data, token, args.cluster, [Path(f) for f in args.files] or None, args.host, args.max_running)
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"tdetl serve: listening on http://{shown_host}:{args.port} ({told})", file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
