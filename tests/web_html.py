"""Reading the pages back in tests: tables by row (each cell's text and ``data-value``), chart
marks and forms, with the standard library's HTML parser (no browser here; the chromium tests
are elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = ["Cell", "Page", "Row", "parse"]


@dataclass
class Cell:
    attrs: dict[str, str]
    text: str = ""

    @property
    def value(self) -> str:
        return self.attrs.get("data-value", self.text.strip())


@dataclass
class Row:
    attrs: dict[str, str]
    table: str
    cells: list[Cell] = field(default_factory=list)


@dataclass
class Page:
    rows: list[Row] = field(default_factory=list)
    headers: dict[str, list[str]] = field(default_factory=dict)
    marks: list[dict[str, str]] = field(default_factory=list)
    elements: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    text: str = ""

    def table(self, table_id: str) -> list[Row]:
        return [r for r in self.rows if r.table == table_id and r.cells]

    def by(self, table_id: str, attr: str) -> dict[str, Row]:
        return {r.attrs[attr]: r for r in self.table(table_id) if attr in r.attrs}

    def column(self, table_id: str, header: str) -> int:
        return self.headers[table_id].index(header)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._table = ""
        self._row: Row | None = None
        self._cell: Cell | None = None
        self._th: list[str] | None = None
        self._texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.page.elements.append((tag, a))
        if "mark" in a.get("class", "").split():
            self.page.marks.append({"tag": tag, **a})
        if tag == "table":
            self._table = a.get("id", "")
            self.page.headers[self._table] = []
        elif tag == "tr":
            self._row = Row(a, self._table)
            self.page.rows.append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = Cell(a)
            self._row.cells.append(self._cell)
        elif tag == "th":
            self._th = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        elif tag == "th" and self._th is not None:
            self.page.headers.setdefault(self._table, []).append("".join(self._th).strip())
            self._th = None

    def handle_data(self, data: str) -> None:
        self._texts.append(data)
        if self._cell is not None:
            self._cell.text += data
        if self._th is not None:
            self._th.append(data)


def parse(html: str) -> Page:
    parser = _Parser()
    parser.feed(html)
    parser.page.text = " ".join(" ".join(parser._texts).split())
    return parser.page
