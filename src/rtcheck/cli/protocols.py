"""``rtcheck protocols``: the bundled protocols, or one protocol's limits."""

from __future__ import annotations

import argparse
import json
import sys

from rtcheck.cli._common import (
    EXIT_OK,
    Commands,
)


def add_parser(commands: Commands) -> None:
    """Add the command's parser to ``commands``."""
    parser = commands.add_parser(
        "protocols",
        epilog="examples:\n  rtcheck protocols\n  rtcheck protocols eso-oligo-rt --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="list the bundled protocols, or show one protocol's limits",
        description="Without NAME, list the bundled protocols with their version and sources. "
        "With NAME (a bundled protocol) or FILE, print its limits as a table, or as JSON with "
        "--json. Example: rtcheck protocols eso-oligo-rt",
    )
    parser.add_argument("name", nargs="?", metavar="NAME|FILE", help="the protocol to show")
    parser.add_argument("--json", action="store_true", help="print the limits as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``rtcheck protocols``; its exit status."""
    from rtcheck.protocol.definition import bundled_protocols, load_protocol

    if args.name:
        from rtcheck.outputs.protocol_table import protocol_document, protocol_table

        protocol = load_protocol(args.name)
        if args.json:
            json.dump(protocol_document(protocol), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(protocol_table(protocol))
        return EXIT_OK

    for path in bundled_protocols():
        protocol = load_protocol(str(path))
        print(f"{protocol.name}  version {protocol.version}  ({path})")
        if protocol.title:
            print(f"  {protocol.title}")
        limits = len(protocol.oar_limits) + len(protocol.lesion_coverage)
        limits += len(protocol.lesion_oar_limits)
        print(f"  {limits} limits; sources:")
        for key, text in protocol.sources.items():
            print(f"    {key}: {text}")
    return EXIT_OK
