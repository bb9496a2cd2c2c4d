"""``streamtape inspect``: what a cassette holds, as a table per interaction or as JSON."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from ._app import EPILOG_EXIT, load, main, make_console


@main.command(epilog="Examples:\n\n  streamtape inspect tests/cassettes/story.yaml\n\n"
                     "  streamtape inspect starter:thinking --json\n\n" + EPILOG_EXIT)  # fmt: skip
@click.argument("cassette")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON, for machines")
def inspect(cassette: str, as_json: bool) -> None:
    """Summarise each interaction: request, status, events by type, timing, tokens, how it ended,
    and a timeline of when each event arrived."""
    from ..report import describe_cassette

    report = describe_cassette(load(cassette))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    console = make_console()
    for item in report["interactions"]:
        console.print(_inspect_table(item))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _inspect_table(item: dict[str, Any]) -> Table:
    from ..report import timeline

    request = item["request"]
    # the cassette's own text (a URL, a model, event names) is shown as it is, never read as markup
    title = Text(f"#{item['index']}  {request['method']} {request['url']}")
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    details = ", ".join(f"{k}={request[k]}" for k in ("model", "max_tokens", "messages") if request[k] is not None)
    if details:
        table.add_row("request", Text(details))
    if "status" not in item:
        table.add_row("ended", Text(item["ended"]))
        return table
    table.add_row("status", str(item["status"]))
    table.add_row("events", Text(", ".join(f"{name} {count}" for name, count in item["events"].items()) or "none"))
    table.add_row("timing", ", ".join(f"{label} {_ms(item[key])}" for label, key in (
        ("headers", "headers_at"), ("first event", "first_event_at"), ("duration", "duration"),
        ("longest gap", "longest_gap"))))  # fmt: skip
    if item["tokens"]:
        table.add_row("tokens", ", ".join(f"{k.removesuffix('_tokens')} {v}" for k, v in item["tokens"].items()))
    if item.get("tool_calls"):  # as the provider reads them: name(arguments), or the name alone
        table.add_row("tool calls", Text(", ".join(item["tool_calls"])))
    stop = f" (stop_reason {item['stop_reason']})" if item["stop_reason"] else ""
    table.add_row("ended", Text(item["ended"] + stop))
    if item["arrivals"]:
        table.add_row("timeline", f"|{timeline(item['arrivals'], item['duration'])}| 0 - {item['duration']:.2f} s")
    table.add_row("", "")
    return table
