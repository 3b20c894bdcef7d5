"""Reading a rendered report back: element ids, image sources, links and external references (stdlib parser)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class HtmlFacts:
    ids: set[str] = field(default_factory=set)
    img_src: list[str] = field(default_factory=list)
    img_alt: list[str] = field(default_factory=list)
    hrefs: list[str] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)
    srcs: list[str] = field(default_factory=list)  # any src= attribute (img, script, iframe, ...)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.facts = HtmlFacts()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        f = self.facts
        f.tags.add(tag)
        if "id" in a:
            f.ids.add(a["id"])
        if "src" in a:
            f.srcs.append(a["src"] or "")
        if tag == "img":
            f.img_src.append(a.get("src") or "")
            f.img_alt.append(a.get("alt") or "")
        if "href" in a:
            f.hrefs.append(a["href"] or "")


def parse(html: str) -> HtmlFacts:
    p = _Parser()
    p.feed(html)
    return p.facts


def markdown_tables(md: str) -> list[list[str]]:
    """Each markdown table as its lines (consecutive lines starting with '|')."""
    tables, cur = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            tables.append(cur)
            cur = []
    if cur:
        tables.append(cur)
    return tables


def cells(line: str) -> int:
    """Number of cells in a markdown table line (escaped pipes do not count)."""
    return len(re.split(r"(?<!\\)\|", line.strip())) - 2
