"""``kappalake`` command line: broker, topics, producers, ingestion, summaries and the demo."""

from __future__ import annotations

import argparse
import os
import select
import sys
from collections.abc import Sequence

from kappalake.cli import demo, operations, prepare, quality, reading, streams
from kappalake.cli.preflight import kafka_advice, require_kafka
from kappalake.config import load_config
from kappalake.errors import ConfigError, KappalakeError

# Each subject module adds its commands (in this order, as `kappalake --help` lists them) and
# binds each to its function (`run`); a command only parses its flags and calls the library.
SUBJECTS = (prepare, streams, quality, reading, operations, demo)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kappalake", description=__doc__)
    p.add_argument("--profile", default="local", help="configuration profile: conf/<profile>.yaml (default: local)")
    p.add_argument("--conf-dir", help="directory holding base.yaml and the profiles (default: ./conf)")
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="extra YAML merged on top (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one key, e.g. --set broker.port=19092 (repeatable)")
    sub = p.add_subparsers(dest="command", required=True)
    for subject in SUBJECTS:
        subject.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = None
    try:
        cfg = load_config(args.profile, args.conf_dir, args.config, args.overrides)
        if args.command in ("topics", "produce", "alerts"):  # kafka-python only: no stream would wait
            require_kafka(cfg)
        code = args.run(cfg, args)
        sys.stdout.flush()  # short output waits in the buffer: a reader gone shows here, not at exit
        return code
    except ConfigError as e:
        print(f"kappalake: configuration error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if not _reader_gone():  # another pipe (a child process, a producer worker): a real failure
            raise
        # `kappalake query --list | head`: the reader left, as with any Unix tool. Python's exit
        # flush would raise again on what is still buffered.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # noqa: BLE001 - one readable line for known failures, traceback otherwise
        if isinstance(e, KappalakeError):
            print(f"kappalake: {e}", file=sys.stderr)
            return 1
        from kafka.errors import KafkaError

        if isinstance(e, KafkaError) and cfg is not None:
            why = str(e) if str(e).startswith(type(e).__name__) else f"{type(e).__name__}: {e}"
            print(f"kappalake: Kafka at {cfg.bootstrap_servers} did not answer ({why}): {kafka_advice(cfg)}",
                  file=sys.stderr)
            return 1
        raise


def _reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll reports an error on it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), stdout replaced or closed
        return False
