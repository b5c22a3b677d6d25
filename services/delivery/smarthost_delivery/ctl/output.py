"""What every smarthostctl command shares: the `--json` flag after the command, JSON output."""

import argparse
import json


def common_flags() -> argparse.ArgumentParser:
    """Accepted after the command too (`queue list --json`), without overriding the global flag."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    return common


def print_json(value: object) -> None:
    print(json.dumps(value, indent=None, sort_keys=True))
