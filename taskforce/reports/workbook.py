"""XLSX workbooks: one sheet per DataFrame, the way the office keeps its ledgers.

The sheets are written as SpreadsheetML straight into the zip, a column at a time,
instead of through openpyxl's cell objects: a review's task ledger has a row per task
node, and at the scale of issue 9 (1,000,000 action items) openpyxl's per-cell objects
and serialiser took minutes and gigabytes. The workbook looks the same as openpyxl made
it (bold shaded header, frozen first row, filters, fitted widths, money / date / time
formats; tests/reports compare the two cell by cell). A frame longer than a sheet can
hold (Excel's 1,048,576 rows) continues on sheets named "<name> (2)", "<name> (3)", …
A SheetView may carry a note (what the sheet holds, e.g. a review's rule for its ledger):
it is the first row of each of the sheet's parts, above the header.
"""

from __future__ import annotations

import datetime as dt
import operator
import queue
import re
import threading
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape as _xml_escape
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

MAX_WIDTH = 60
EXCEL_MAX_ROWS = 1_048_576  # rows per sheet, the header included
HEADER_FILL = "DDE7F0"
_ROWS_PER_WRITE = 20_000
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)  # fixed, so the same content gives the same file
_EPOCH = dt.datetime(1899, 12, 30)  # Excel's day 0 (with its 1900 leap-year bug folded in)
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # not allowed in XML 1.0
_ILLEGAL_BUT_NUL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f]")

# Cell styles (index into cellXfs of styles.xml).
_HEADER, _MONEY, _DATETIME, _DATE = 1, 2, 3, 4

_STYLES = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<numFmts count="3"><numFmt numFmtId="164" formatCode="#,##0.00"/><numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm"/><numFmt numFmtId="166" formatCode="yyyy-mm-dd"/></numFmts>
<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font><font><b val="1"/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>
<fills count="3"><fill><patternFill/></fill><fill><patternFill patternType="gray125"/></fill><fill><patternFill patternType="solid"><fgColor rgb="00{HEADER_FILL}"/><bgColor rgb="00{HEADER_FILL}"/></patternFill></fill></fills>
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" applyFill="1" applyAlignment="1"><alignment vertical="center"/></xf><xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/><xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/><xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>
</styleSheet>"""
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"


def _display_width(value) -> int:
    text = "" if value is None else str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _column_letter(index: int) -> str:  # 1-based
    letters = ""
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _text(value: str) -> str:
    return _xml_escape(_ILLEGAL.sub("", value))


def _serial(value: dt.datetime) -> str:
    delta = value - _EPOCH
    return repr(delta.days + (delta.seconds * 1_000_000 + delta.microseconds) / 86_400_000_000)


_EMPTY = "<c/>"  # keeps the place of a missing value: cells carry no reference of their own
_TEXT_CELL = '<c t="inlineStr"><is><t xml:space="preserve">{}</t></is></c>'


def _wrap(prefix: str, suffix: str, texts: list[str]) -> list[str]:
    """[prefix + t + suffix for t in texts], built by one join and one split (C speed).
    The texts hold no NUL: escaped text has it removed, numbers never have it."""
    if not texts:
        return []
    return (prefix + (suffix + "\x00" + prefix).join(texts) + suffix).split("\x00")


def _with_gaps(cells: list[str], missing: np.ndarray) -> list[str]:
    if not missing.any():
        return cells
    out = np.array(cells, dtype=object)
    out[missing] = _EMPTY
    return out.tolist()


def _text_cells(values: pd.Series) -> tuple[list[str], int]:
    """Cells of a column of texts, escaped for the whole column at once. Missing values and
    empty texts are empty cells (openpyxl wrote no value for an empty text either)."""
    texts = values.tolist()
    missing = values.isna().to_numpy(dtype=bool)
    if missing.any():
        texts = ["" if gone else t for t, gone in zip(texts, missing.tolist(), strict=True)]
    # Empty texts too (`not ""`), over plain str objects: pandas' `values == ""` on an object
    # column cost more than the rest of the column's conversion.
    missing = np.fromiter(map(operator.not_, texts), dtype=bool, count=len(texts))
    if missing.all():
        return [_EMPTY] * len(texts), 0
    joined = "\x00".join(texts)
    if joined.count("\x00") != len(texts) - 1:  # a text holds NUL itself: one at a time
        escaped = [_text(t) for t in texts]
    else:
        escaped = _xml_escape(_ILLEGAL_BUT_NUL.sub("", joined)).split("\x00")
    cells = _wrap('<c t="inlineStr"><is><t xml:space="preserve">', "</t></is></c>", escaped)
    return _with_gaps(cells, missing), 0  # widths: _width, over the whole column


def _max_display_width(texts: list[str]) -> int:
    """max(_display_width) without measuring every text: a wide character takes three bytes
    in UTF-8, so len + (UTF-8 bytes - len) // 2 bounds a text's width (and is its width for
    ASCII and CJK text); only texts whose bound beats the widest found so far are measured."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    encoded = np.fromiter(map(len, map(str.encode, texts)), dtype=np.int64, count=len(texts))
    bound = lengths + (encoded - lengths) // 2
    ascii_ = encoded == lengths
    best = int(lengths[ascii_].max()) if ascii_.any() else 0
    others = np.flatnonzero(~ascii_)
    for i in others[np.argsort(-bound[others], kind="stable")]:
        if bound[i] <= best:
            break
        best = max(best, _display_width(texts[i]))
    return best


def _serials(local: pd.Series) -> tuple[list[str], int]:
    """Cells of naive datetimes as Excel serial days (what openpyxl wrote), NaT empty."""
    values = local.to_numpy(dtype="datetime64[us]")
    missing = np.isnat(values)
    if missing.all():
        return [_EMPTY] * len(values), 0
    micros = (values - np.datetime64(_EPOCH, "us")).astype("int64")
    days, rest = np.divmod(micros, 86_400_000_000)
    serial = (days + rest / 86_400_000_000).tolist()
    cells = _wrap(f'<c s="{_DATETIME}"><v>', "</v></c>", list(map(repr, serial)))
    fraction = (micros[~missing] % 1_000_000 != 0).any()
    # len(str(datetime)), with or without microseconds
    return _with_gaps(cells, missing), 26 if fraction else 19


def _local(values: pd.Series, timezone: str | None) -> pd.Series:
    # Excel has no time zones: write the local wall-clock time of the task force.
    return values.dt.tz_convert(ZoneInfo(timezone or "UTC")).dt.tz_localize(None)


def _width(values: pd.Series, timezone: str | None) -> int:
    """The widest cell of a whole column as displayed (what the column is fitted to),
    computed without building its cells."""
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        local = _local(values, timezone) if isinstance(dtype, pd.DatetimeTZDtype) else values
        stamps = local.to_numpy(dtype="datetime64[us]")
        stamps = stamps[~np.isnat(stamps)]
        if not len(stamps):
            return 0
        micros = (stamps - np.datetime64(_EPOCH, "us")).astype("int64")
        return 26 if (micros % 1_000_000 != 0).any() else 19
    numpy = isinstance(dtype, np.dtype)
    if numpy and dtype.kind == "b":
        return max((len(str(v)) for v in set(values.tolist())), default=0)
    if numpy and dtype.kind in "iu":
        return (
            max((len(str(v)) for v in (values.min(), values.max())), default=0)
            if len(values)
            else 0
        )
    if numpy and dtype.kind == "f":
        return max((len(str(v)) for v in set(values.dropna().tolist())), default=0)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("string", "empty"):
        # Present and not empty; the column's values are texts or missing (None, NaN, NA).
        present = [t for t in values.tolist() if isinstance(t, str) and t]
        return _max_display_width(present) if present else 0
    items = values.tolist()
    if kind == "date" and all(v is None or type(v) is dt.date for v in items):
        return 10 if any(v is not None for v in items) else 0
    if kind == "decimal" and _all_decimal(items):
        return max((len(str(v)) for v in items if v is not None), default=0)
    return _Column._objects(items)[1]


def _all_decimal(items: list) -> bool:
    return all(v is None or type(v) is Decimal for v in items)


def _cells(values: pd.Series, timezone: str | None) -> list[str]:
    """The cells of (a slice of) a column as XML, `<c/>` for a missing value."""
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _serials(_local(values, timezone))[0]
    if dtype.kind == "M":
        return _serials(values)[0]
    numpy = isinstance(dtype, np.dtype)  # nullable extension types go cell by cell below
    if numpy and dtype.kind == "b":
        return _wrap('<c t="b"><v>', "</v></c>", ["1" if v else "0" for v in values.tolist()])
    if numpy and dtype.kind in "iu":
        return _wrap("<c><v>", "</v></c>", list(map(str, values.tolist())))
    if numpy and dtype.kind == "f":
        missing = values.isna().to_numpy()
        texts = list(map(repr, values.fillna(0.0).tolist()))
        return _with_gaps(_wrap("<c><v>", "</v></c>", texts), missing)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("string", "empty"):
        return _text_cells(values)[0]
    items = values.tolist()
    if kind == "date" and all(v is None or type(v) is dt.date for v in items):
        # Day numbers from ordinals: numpy's conversion of date objects is ten times slower.
        day_zero = _EPOCH.date().toordinal()
        missing = np.array([v is None for v in items], dtype=bool)
        texts = [str(v.toordinal() - day_zero) if v is not None else "0" for v in items]
        return _with_gaps(_wrap(f'<c s="{_DATE}"><v>', "</v></c>", texts), missing)
    if kind == "decimal" and _all_decimal(items):  # money in yuan
        missing = np.array([v is None for v in items], dtype=bool)
        texts = [str(v) if v is not None else "0" for v in items]
        return _with_gaps(_wrap(f'<c s="{_MONEY}"><v>', "</v></c>", texts), missing)
    return _Column._objects(items)[0]


class _Column:
    """Cell conversion of values no fast path takes (mixed Python objects)."""

    @staticmethod
    def _objects(items: list) -> tuple[list[str], int]:
        """Cells of a column of mixed Python values (text, numbers, dates, Decimals, missing)."""
        cells: list[str] = []
        append = cells.append
        widths: set[int] = {0}
        for v in items:
            if v is None or (not isinstance(v, str | Decimal) and _is_missing(v)):
                append(_EMPTY)
                continue
            if isinstance(v, pd.Timestamp):
                v = v.to_pydatetime()
            if hasattr(v, "value") and not isinstance(v, int | float | Decimal):
                v = v.value  # enum members
            if isinstance(v, str):
                append(_TEXT_CELL.format(_text(v)) if v else _EMPTY)
                widths.add(_display_width(v))
                continue
            if isinstance(v, bool | np.bool_):
                append(f'<c t="b"><v>{int(v)}</v></c>')
                v = bool(v)
            elif isinstance(v, Decimal):
                append(f'<c s="{_MONEY}"><v>{v}</v></c>')
            elif isinstance(v, dt.datetime):
                if v.tzinfo is not None:
                    v = v.astimezone(dt.UTC).replace(tzinfo=None)  # no zone known here: UTC
                append(f'<c s="{_DATETIME}"><v>{_serial(v)}</v></c>')
            elif isinstance(v, dt.date):
                append(f'<c s="{_DATE}"><v>{(v - _EPOCH.date()).days}</v></c>')
            elif isinstance(v, float | np.floating):
                v = float(v)
                append(f"<c><v>{v!r}</v></c>")
            elif isinstance(v, int | np.integer):
                v = int(v)
                append(f"<c><v>{v}</v></c>")
            else:
                text = str(v)
                append(_TEXT_CELL.format(_text(text)))
                widths.add(_display_width(text))
                continue
            widths.add(len(str(v)))
        return cells, max(widths)


@dataclass(frozen=True)
class SheetView:
    """Some columns of a frame (by position), in this order, under these headers. Several
    workbooks written together (a review's one per locale) share the conversion of a
    frame they all show: only the headers differ."""

    frame: pd.DataFrame
    columns: tuple[tuple[int, str], ...]  # (position in the frame, header)
    note: str | None = None  # a row above the header, e.g. which records the sheet lists

    @classmethod
    def of(
        cls, frame: pd.DataFrame, headers: dict[str, str] | None = None, note: str | None = None
    ) -> SheetView:
        names = [str(c) for c in frame.columns]
        if headers is None:
            return cls(frame, tuple(enumerate(names)), note)
        return cls(frame, tuple((names.index(name), h) for name, h in headers.items()), note)

    @property
    def top_rows(self) -> int:
        """Rows above the data: the header, and the note if there is one."""
        return 2 if self.note else 1

    def __len__(self) -> int:
        return len(self.frame)


def _is_missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _local_naive(frame: pd.DataFrame, timezone: str | None) -> pd.DataFrame:
    """Aware datetimes inside object columns, as local wall-clock time (what Excel shows)."""
    out = frame
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object:
            continue
        sample = column.dropna()
        if sample.empty or not isinstance(sample.iloc[0], dt.datetime):
            continue
        converted = column.map(
            lambda v: (
                v.astimezone(ZoneInfo(timezone or "UTC")).replace(tzinfo=None)
                if isinstance(v, dt.datetime) and v.tzinfo is not None
                else v
            )
        )
        if out is frame:
            out = frame.copy()
        out[name] = converted
    return out


def _sheet_head(headers: list[str], widths: list[int], rows: int, note: str | None = None) -> str:
    letters = [_column_letter(i) for i in range(1, len(headers) + 1)]
    last = f"{letters[-1] if letters else 'A'}{rows}"
    header_row = 2 if note else 1  # the header stays frozen at the top, under the note
    first_data = f"A{header_row + 1}"
    head = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">'
        f'<dimension ref="A1:{last}"/>'
        '<sheetViews><sheetView workbookViewId="0">'
        f'<pane ySplit="{header_row}" topLeftCell="{first_data}" activePane="bottomLeft" '
        'state="frozen"/>'
        f'<selection pane="bottomLeft" activeCell="{first_data}" sqref="{first_data}"/>'
        "</sheetView></sheetViews>"
        '<sheetFormatPr baseColWidth="8" defaultRowHeight="15"/>'
    )
    if headers:
        head += (
            "<cols>"
            + "".join(
                f'<col min="{i}" max="{i}" width="{min(MAX_WIDTH, w + 2)}" customWidth="1"/>'
                for i, w in enumerate(widths, start=1)
            )
            + "</cols>"
        )
    note_row = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t xml:space="preserve">'
        f"{_text(note)}</t></is></c></row>"
        if note
        else ""
    )
    return (
        head
        + "<sheetData>"
        + note_row
        + f'<row r="{header_row}">'
        + "".join(
            f'<c r="{letter}{header_row}" s="{_HEADER}" t="inlineStr"><is>'
            f'<t xml:space="preserve">{_text(h)}</t></is></c>'
            for letter, h in zip(letters, headers, strict=True)
        )
        + "</row>"
    )


def _sheet_tail(columns: int, rows: int, header_row: int = 1) -> str:
    tail = "</sheetData>"
    if columns:
        tail += f'<autoFilter ref="A{header_row}:{_column_letter(columns)}{rows}"/>'
    return tail + "</worksheet>"


def _sheet_names(sheets: dict[str, SheetView], max_rows: int) -> list[tuple[str, str, int, int]]:
    """(sheet name, frame key, first row, end row) — long frames continue on numbered sheets."""
    out, used = [], set()
    for key, view in sheets.items():
        per_sheet = max(1, max_rows - view.top_rows)
        parts = max(1, -(-len(view) // per_sheet))
        for k in range(parts):
            base = str(key)
            name = base[:31] if k == 0 else f"{base[:25]} ({k + 1})"
            while name in used:
                name = name[:28] + f"~{len(used)}"
            used.add(name)
            out.append((name, key, k * per_sheet, min(len(view), (k + 1) * per_sheet)))
    return out


def write_workbook(
    sheets: dict[str, pd.DataFrame | SheetView],
    path: Path,
    *,
    timezone: str | None = None,
    max_rows: int = EXCEL_MAX_ROWS,
) -> Path:
    """Write one sheet per frame: bold header, frozen first row, filters, fitted widths.

    Decimal cells get a two-decimal number format (money in yuan); aware
    datetimes are written as local time in `timezone`. A frame of more than
    `max_rows - 1` rows continues on further sheets.
    """
    return write_workbooks({Path(path): sheets}, timezone=timezone, max_rows=max_rows)[0]


@dataclass(frozen=True)
class LaterSheet:
    """A small sheet whose content is known only later (`get` may wait for it): written
    after every other sheet of its workbook, in its place in the workbook's order. It must
    fit one sheet."""

    get: Callable[[], pd.DataFrame | SheetView]

    def __len__(self) -> int:
        return 1

    @property
    def top_rows(self) -> int:
        return 1


def write_workbooks(
    books: dict[Path, dict[str, pd.DataFrame | SheetView | LaterSheet]],
    *,
    timezone: str | None = None,
    max_rows: int = EXCEL_MAX_ROWS,
) -> list[Path]:
    """Write several workbooks at once, a block of rows at a time: a frame that several
    of them show (as SheetViews of the same frame object) is converted once, and only one
    block of its cells is in memory at a time."""
    views = {
        path: {
            name: sheet if isinstance(sheet, SheetView | LaterSheet) else SheetView.of(sheet)
            for name, sheet in sheets.items()
        }
        for path, sheets in books.items()
    }
    local: dict[int, pd.DataFrame] = {}  # id(frame) -> frame with local wall-clock datetimes
    widths: dict[tuple[int, int], int] = {}

    def prepare(view: SheetView) -> None:
        key = id(view.frame)
        if key not in local:
            local[key] = _local_naive(view.frame, timezone)
        for position, _header in view.columns:
            if (key, position) not in widths:
                widths[key, position] = _width(local[key].iloc[:, position], timezone)

    for sheets in views.values():
        for view in sheets.values():
            if isinstance(view, SheetView):
                prepare(view)
    layouts = {path: _sheet_names(sheets, max_rows) for path, sheets in views.items()}
    later = {  # sheet positions holding a LaterSheet in some book: written last
        index
        for path, layout in layouts.items()
        for index, (_name, key, *_rows) in enumerate(layout)
        if isinstance(views[path][key], LaterSheet)
    }
    longest = max((len(layout) for layout in layouts.values()), default=0)
    archives = {}
    streams: list[_Background] = []
    try:
        for path, layout in layouts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            archives[path] = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
            _write_parts(archives[path], [name for name, *_ in layout])
        for index in sorted(range(longest), key=lambda i: i in later):
            parts = []  # (stream, view, first row, end row) of this sheet index in each book
            for path, layout in layouts.items():
                if index >= len(layout):
                    continue
                _name, key, start, stop = layout[index]
                view = views[path][key]
                if isinstance(view, LaterSheet):
                    got = view.get()
                    view = got if isinstance(got, SheetView) else SheetView.of(got)
                    if len(view) > max_rows - view.top_rows:
                        raise ValueError(f"sheet {key!r}: {len(view)} rows do not fit one sheet")
                    prepare(view)
                    start, stop = 0, len(view)
                info = zipfile.ZipInfo(f"xl/worksheets/sheet{index + 1}.xml", _ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                stream = _Background(archives[path].open(info, "w", force_zip64=True))
                streams.append(stream)
                headers = [h for _p, h in view.columns]
                column_widths = [
                    max(widths[id(view.frame), p], _display_width(h)) for p, h in view.columns
                ]
                rows = stop - start + view.top_rows
                stream.write(_sheet_head(headers, column_widths, rows, view.note).encode())
                parts.append((stream, view, start, stop, rows))
            blocks = max(
                (-(-(stop - start) // _ROWS_PER_WRITE) for _s, _v, start, stop, _r in parts),
                default=0,
            )
            for block in range(blocks):
                converted: dict[tuple[int, int, int], list[str]] = {}  # this block only
                for stream, view, start, stop, _rows in parts:
                    first = start + block * _ROWS_PER_WRITE
                    last = min(stop, first + _ROWS_PER_WRITE)
                    if first >= last:
                        continue
                    frame = local[id(view.frame)]
                    cells = []
                    for position, _header in view.columns:
                        key = (id(view.frame), position, first)
                        if key not in converted:
                            converted[key] = _cells(frame.iloc[first:last, position], timezone)
                        cells.append(converted[key])
                    # A row's cells are in column order: rows are plain concatenations.
                    rows_xml = (
                        map("".join, zip(*cells, strict=True)) if cells else [""] * (last - first)
                    )
                    stream.write(("<row>" + "</row><row>".join(rows_xml) + "</row>").encode())
            for stream, view, _start, _stop, rows in parts:
                stream.write(_sheet_tail(len(view.columns), rows, view.top_rows).encode())
                stream.close()
    finally:
        for stream in streams:
            stream.stop()  # after an error: no thread left writing into a closing archive
        for archive in archives.values():
            archive.close()
    return list(books)


class _Background:
    """A zip entry written (compressed: zlib releases the GIL) in a thread of its own, so
    that the deflating of one block overlaps the building of the next. A bounded queue
    keeps at most a few blocks in memory; an error in the thread is raised in the caller."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xlsx-deflate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self._blocks.get()) is not None:
            if self._error is None:
                try:
                    self._stream.write(block)
                except BaseException as exc:  # handed to the caller's next write or close
                    self._error = exc

    def write(self, block: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._blocks.put(block)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._blocks.put(None)
            self._thread.join()

    def close(self) -> None:
        self.stop()
        if self._error is not None:
            raise self._error
        self._stream.close()


def _write_parts(archive: zipfile.ZipFile, sheet_names: list[str]) -> None:
    """Everything of a workbook but its sheets' rows."""
    count = len(sheet_names)
    workbook_sheets = "".join(
        f'<sheet name="{_xml_escape(name, {chr(34): "&quot;"})}" sheetId="{i}" r:id="rId{i}"/>'
        for i, name in enumerate(sheet_names, start=1)
    )
    rels = (
        "".join(
            f'<Relationship Id="rId{i}" Type="{_REL_NS}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, count + 1)
        )
        + f'<Relationship Id="rId{count + 1}" Type="{_REL_NS}/styles" Target="styles.xml"/>'
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        + "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            for i in range(1, count + 1)
        )
        + "</Types>"
    )

    def put(name: str, text: str) -> None:
        archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), text, compress_type=zipfile.ZIP_DEFLATED)

    put("[Content_Types].xml", content_types)
    put(
        "_rels/.rels",
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Relationships xmlns="{_PKG_REL_NS}"><Relationship Id="rId1" '
        f'Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
    )
    put(
        "xl/workbook.xml",
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">'
        f'<bookViews><workbookView activeTab="0"/></bookViews><sheets>{workbook_sheets}</sheets>'
        "</workbook>",
    )
    put(
        "xl/_rels/workbook.xml.rels",
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Relationships xmlns="{_PKG_REL_NS}">{rels}</Relationships>',
    )
    put("xl/styles.xml", _STYLES)
