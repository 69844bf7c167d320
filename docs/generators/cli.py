"""The command line: `kappalake`'s argument parser as a reference, and spark-submit.sh's usage."""

from __future__ import annotations

import argparse

from generators.common import REPO, GenerationError, cell, code, table


def cli_reference() -> str:
    """Every command of ``kappalake``, its help and every option, from ``build_parser()``."""
    from kappalake.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    out = ["| command | what it does |", "|---|---|"]
    out += [f"| [`{name}`](#kappalake-{name}) | {cell(helps.get(name, ''))} |" for name in sub.choices]
    out += ["", "## Global options", "",
            "They go before the command, e.g. `kappalake --profile emr --set lake.root=/data/lake status`.", "",
            _usage(parser, [a for a in parser._actions if not isinstance(a, argparse._SubParsersAction)]),
            _arguments(parser, skip_subparsers=True)]
    for name, sp in sub.choices.items():
        what = helps.get(name, "")
        out += [f"## kappalake {name}", "", cell(what[:1].upper() + what[1:]) + ".", ""]
        if sp.description and sp.description != helps.get(name):
            out += [cell(sp.description), ""]
        out += [_usage(sp, sp._actions), _arguments(sp)]
    return "\n".join(out)


def _usage(parser: argparse.ArgumentParser, actions: list[argparse.Action]) -> str:
    f = argparse.HelpFormatter(parser.prog, width=96)
    f.add_usage(parser.usage, actions, parser._mutually_exclusive_groups, prefix="")
    return "```text\n" + f.format_help().strip() + "\n```\n"


def _arguments(parser: argparse.ArgumentParser, skip_subparsers: bool = False) -> str:
    f = argparse.HelpFormatter(parser.prog)
    out = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
        if not actions:
            continue
        rows = []
        for a in actions:
            if a.option_strings:
                name = ", ".join(a.option_strings)
                value = "" if a.nargs == 0 else (a.metavar or ("{" + ",".join(map(str, a.choices)) + "}" if a.choices
                                                               else a.dest.upper()))
                arg = f"{name} {value}".strip()
            else:
                arg = a.metavar or a.dest
            default = a.default
            shown = "" if default in (None, False, [], argparse.SUPPRESS) or a.nargs == 0 else code(default)
            if isinstance(a, argparse._AppendAction):
                shown = shown or ""
                extra = " (repeatable)" if "repeatable" not in (a.help or "") else ""
            else:
                extra = ""
            required = " **required**" if a.required and a.option_strings else ""
            text = f._expand_help(a) if a.help else ""
            if a.choices and not a.option_strings:
                text = ("one of " + ", ".join(f"`{c}`" for c in a.choices) + (": " + text if text else "")).strip()
            text = text[:1].upper() + text[1:]
            rows.append([code(arg) + required, text + extra, shown])
        title = group.title if group.title not in ("positional arguments", "options", "optional arguments") else None
        heading = {"positional arguments": "Arguments", "options": "Options", "optional arguments": "Options"}
        out += [f"**{heading.get(group.title, title or 'Options') if title is None else title[0].upper() + title[1:]}**",
                "", table(["argument", "meaning", "default"], rows)]
    return "\n".join(out)


def spark_submit_usage() -> str:
    """The usage comment at the top of spark-submit.sh."""
    lines = []
    for line in (REPO / "spark-submit.sh").read_text().splitlines()[1:]:
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    text = "\n".join(lines).strip()
    if "--dry-run" not in text:
        raise GenerationError("spark-submit.sh lost its usage comment")
    return "```text\n" + text + "\n```\n"
