"""Reports of the budget audits: HTML (en, zh-CN), Markdown and XLSX.

Thin on purpose: the audits produce DataFrames and a summary dict, this module
only formats them (jinja2 templates in reports/templates/budget/, openpyxl for
workbooks through the shared reports machinery, `taskforce.reports.write_workbook`).

Classification (SPEC §7): a finding about a line classified above the
audience's clearance shows its check, severity and owner but not its text.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from taskforce.budget.audit import AuditResult
from taskforce.budget.performance import PerformanceResult
from taskforce.money import to_yuan
from taskforce.org.names import owner_names
from taskforce.policy.loader import PROJECT_ROOT
from taskforce.policy.schema import Classification
from taskforce.reports import translator, write_workbook
from taskforce.reports.folders import writable_folder
from taskforce.reports.workbook import SheetView

TEMPLATES = PROJECT_ROOT / "reports" / "templates"
REPORTS_DIR_ENV = "TASKFORCE_REPORTS_DIR"  # where generated reports go (default reports/out/)
LOCALES = ("en", "zh-CN")
REDACTED = {
    "en": "[withheld: above this report's clearance]",
    "zh-CN": "[密级高于本报告，不予显示]",
}


def output_dir(out: Path | None = None) -> Path:
    """`out`, else $TASKFORCE_REPORTS_DIR/budget, else reports/out/budget: made now, and
    refused naming where it came from when it cannot be written (before an audit runs)."""
    if out is not None:
        return writable_folder(Path(out), field="out")
    env_root = os.environ.get(REPORTS_DIR_ENV)
    root = Path(env_root or PROJECT_ROOT / "reports" / "out") / "budget"
    return writable_folder(root, field=REPORTS_DIR_ENV if env_root else "out")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "html.j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["yuan"] = lambda fen: f"{to_yuan(int(fen or 0)):,}"
    env.filters["percent_bp"] = lambda bp: f"{Decimal(int(bp or 0)) / 100:.2f} %"
    env.filters["md"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    return env


def redact(findings: pd.DataFrame, clearance: Classification, locale: str) -> pd.DataFrame:
    if findings.empty:
        return findings
    out = findings.copy()
    hidden = ~out["classification"].map(lambda c: Classification(c).readable_by(clearance))
    out.loc[hidden, "summary"] = REDACTED.get(locale, REDACTED["en"])
    if "summary_zh" in out.columns:  # the Chinese text is withheld alike, in every report
        out.loc[hidden, "summary_zh"] = REDACTED["zh-CN"]
    return out


def render_audit(
    result: AuditResult,
    *,
    fmt: str,
    locale: str = "zh-CN",
    clearance: Classification = Classification.internal,
) -> str:
    findings = redact(result.findings, clearance, locale)
    name = f"budget/audit.{locale}.html.j2" if fmt == "html" else "budget/audit.md.j2"
    return (
        _environment()
        .get_template(name)
        .render(
            summary=result.summary,
            findings=findings.to_dict("records"),
            lines=result.lines.to_dict("records"),
            locale=locale,
            names=owner_names(locale),
            t=translator(locale),
            clearance=clearance.value,  # said at the top: who may read this copy
        )
    )


def render_performance(
    result: PerformanceResult,
    *,
    fmt: str,
    locale: str = "zh-CN",
    clearance: Classification = Classification.internal,
) -> str:
    lines = _redact_lines(result.lines, clearance, locale)
    name = f"budget/performance.{locale}.html.j2" if fmt == "html" else "budget/performance.md.j2"
    return (
        _environment()
        .get_template(name)
        .render(
            summary=result.summary,
            lines=lines.to_dict("records"),
            locale=locale,
            t=translator(locale),
            clearance=clearance.value,
        )
    )


def _redact_lines(lines: pd.DataFrame, clearance: Classification, locale: str) -> pd.DataFrame:
    """A line's own text at its classification; its issue's title and action item at the
    issue's too (an operator trial: an internal line funding a secret issue showed the
    issue's title to internal readers)."""
    if lines.empty:
        return lines
    out = lines.copy()

    def unreadable(column: str) -> pd.Series:
        return ~out[column].map(lambda c: not c or Classification(c).readable_by(clearance))

    line_hidden = unreadable("classification")
    issue_hidden = line_hidden | unreadable("issue_classification")
    withheld = REDACTED.get(locale, REDACTED["en"])
    for column in ("purpose", "output_target", "benefit_target"):
        out.loc[line_hidden, column] = withheld
    for column in ("issue_title", "action_item"):
        out.loc[issue_hidden, column] = withheld
    return out


def _money_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """fen columns become exact Decimal yuan columns for spreadsheets, basis points a
    percentage (as the summary sheet and the HTML show them), each in its place."""
    out = frame.copy()
    for column in [c for c in out.columns if c.endswith("_fen")]:
        out[column] = out[column].map(lambda v: to_yuan(int(v or 0)))
        out = out.rename(columns={column: column.removesuffix("_fen") + "_cny"})
    for column in [c for c in out.columns if c.endswith("_bp")]:
        out[column] = out[column].map(lambda v: Decimal(int(v or 0)) / 100)
        out = out.rename(columns={column: column.removesuffix("_bp") + "_percent"})
    return out


# The findings' and lines' columns as a meeting reads them, in both languages (an operator
# trial: `finding_key`, `execution_bp` were no headers for a leadership meeting).
_HEADERS = {
    "finding_key": "发现编号 finding",
    "check": "检查项 check",
    "severity": "严重程度 severity",
    "owner": "责任方 owner",
    "owner_unit": "责任单位 owner",
    "subject_type": "对象类型 subject type",
    "subject_id": "对象 subject",
    "fiscal_year": "预算年度 fiscal year",
    "amount_cny": "金额（元） amount (CNY)",
    "summary": "说明 (English)",
    "summary_zh": "说明（中文）",
    "classification": "密级 classification",
    "status": "状态 status",
    "status_now": "当前状态 status now",
    "first_seen_week": "首次发现周 first seen",
    "last_seen_week": "最近发现周 last seen",
    "resolved_week": "整改周 resolved",
    "line_id": "预算行编号 line id",
    "code": "预算行 line",
    "is_reserve": "应急预留 reserve",
    "approved_by": "批准人 approved by",
    "approved_at": "批准时间 approved at",
    "cross_department": "跨部门 cross-department",
    "purpose": "用途 purpose",
    "output_target": "产出目标 output target",
    "benefit_target": "效益目标 benefit target",
    "spent_in_half_cny": "本半年支出（元） spent in the half (CNY)",
    "spent_to_date_cny": "累计支出（元） spent to date (CNY)",
    "scheduled_to_date_cny": "计划拨付（元） scheduled to date (CNY)",
    "spent_cny": "已支出（元） spent (CNY)",
    "scheduled_cny": "计划拨付（元） scheduled (CNY)",
    "execution_percent": "执行率（%） execution (%)",
    "issue": "关联问题 issue",
    "issue_classification": "问题密级 issue classification",
    "issue_title": "问题名称 issue title",
    "issue_stage": "问题当前环节 issue stage (now)",
    "outcome": "评估结果 outcome",
    "satisfaction": "满意度 satisfaction",
    "action_item": "行动项 action item",
    "action_progress": "行动项进度（%） action progress (%)",
    "approved_by_end": "期末前已批准 approved by the period's end",
    "assessment": "绩效判断 assessment",
}


def _in_both_languages(lines: pd.DataFrame) -> pd.DataFrame:
    """The performance lines' outcome and assessment as the sheet's headers are: 已解决 solved
    (an operator trial: English values in a bilingual sheet)."""
    zh, en = translator("zh-CN"), translator("en")
    # A line's status and its issue's stage are today's, where the rest is the half's.
    out = lines.rename(columns={"status": "status_now"})
    for column, prefix in (("outcome", "outcome."), ("assessment", "assessment.")):
        out[column] = [
            f"{zh(prefix + v)} {en(prefix + v)}" if v else "" for v in out[column].fillna("")
        ]
    return out


def _sheet(frame: pd.DataFrame, clearance: Classification) -> SheetView:
    """A findings or lines sheet: bilingual headers, and a first row saying its audience."""
    zh = translator("zh-CN")(f"audience.{clearance.value}")
    note = (
        f"阅读范围：{zh}；密级更高的内容不予显示。 Audience: {clearance.value}; "
        "content classified above it is withheld."
    )
    return SheetView.of(frame, {str(c): _HEADERS.get(str(c), str(c)) for c in frame.columns}, note)


# The summary sheet's items as the office names them (the HTML reports' labels).
_SUMMARY_ZH = {
    "week": "检查周",
    "half": "评估期（半年）",
    "start": "起始日",
    "end": "截止日",
    "fiscal_years": "预算年度",
    "open": "未整改问题",
    "new": "本周新增",
    "severe_new": "本周新增严重问题",
    "resolved": "本周已整改",
    "lines": "预算行数",
    "in_progress": "本期尚未结束",
    "as_of": "台账截至",
    "budget_cny": "年度预算（元）",
    "allocated_cny": "已批预算行（元）",
    "spent_cny": "已支出（元）",
    "reserve_cny": "应急预留（元）",
    "reserve_drawn_cny": "应急预留已动用（元）",
    "ledger_total_cny": "台账合计（元）",
    "amount_cny": "预算行金额（元）",
    "spent_in_half_cny": "本半年度支出（元）",
    "spent_to_date_cny": "累计支出（元）",
    "execution_percent": "执行率（%）",
}


def _summary_sheet(summary: dict) -> pd.DataFrame:
    """The summary as rows of item, 项目, value: amounts in yuan (as in the HTML; fen in a
    sheet read as yuan would be a hundredfold error), basis points as a percentage."""
    rows = []
    for key, value in summary.items():
        if isinstance(value, dict):
            continue
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        elif key.endswith("_fen"):
            key, value = key.removesuffix("_fen") + "_cny", to_yuan(int(value or 0))
        elif key.endswith("_bp"):
            key, value = key.removesuffix("_bp") + "_percent", Decimal(int(value or 0)) / 100
        rows.append((key, _SUMMARY_ZH.get(key, ""), value))
    return pd.DataFrame(rows, columns=["item", "项目", "value"])


def write_audit_reports(
    result: AuditResult,
    out_dir: Path | None = None,
    *,
    clearance: Classification = Classification.internal,
) -> dict[str, Path]:
    out_dir = output_dir(out_dir)
    stem = f"budget-audit-{result.week}"
    written: dict[str, Path] = {}
    for locale in LOCALES:
        path = out_dir / f"{stem}.{locale}.html"
        path.write_text(
            render_audit(result, fmt="html", locale=locale, clearance=clearance), "utf-8"
        )
        written[f"html_{locale}"] = path
    md = out_dir / f"{stem}.md"
    md.write_text(render_audit(result, fmt="md", locale="en", clearance=clearance), "utf-8")
    written["md"] = md
    summary = _summary_sheet(result.summary)
    findings = _money_columns(redact(result.findings, clearance, "en"))
    written["xlsx"] = write_workbook(
        {
            "summary": summary,
            "findings": _sheet(findings, clearance),
            "lines": _sheet(_money_columns(result.lines), clearance),
        },
        out_dir / f"{stem}.xlsx",
    )
    return written


def write_performance_reports(
    result: PerformanceResult,
    out_dir: Path | None = None,
    *,
    clearance: Classification = Classification.internal,
) -> dict[str, Path]:
    out_dir = output_dir(out_dir)
    stem = f"budget-performance-{result.half}"
    written: dict[str, Path] = {}
    for locale in LOCALES:
        path = out_dir / f"{stem}.{locale}.html"
        path.write_text(
            render_performance(result, fmt="html", locale=locale, clearance=clearance), "utf-8"
        )
        written[f"html_{locale}"] = path
    md = out_dir / f"{stem}.md"
    md.write_text(render_performance(result, fmt="md", locale="en", clearance=clearance), "utf-8")
    written["md"] = md
    summary = _summary_sheet(result.summary)
    written["xlsx"] = write_workbook(
        {
            "summary": summary,
            "lines": _sheet(
                _in_both_languages(_money_columns(_redact_lines(result.lines, clearance, "zh-CN"))),
                clearance,
            ),
        },
        out_dir / f"{stem}.xlsx",
    )
    return written


def audit_table(
    result: AuditResult, clearance: Classification = Classification.internal
) -> list[dict]:
    """Rows for a Prefect table artifact: strings and yuan, nothing above clearance."""
    frame = redact(result.findings, clearance, "en")
    return [
        {
            "severity": r["severity"],
            "check": r["check"],
            "owner": r["owner"],
            "subject": f"{r['subject_type']}:{r['subject_id']}",
            "amount_cny": f"{to_yuan(int(r['amount_fen'])):,}",
            "status": r["status"],
            "first_seen": r["first_seen_week"],
            "summary": r["summary"],
        }
        for r in frame.to_dict("records")
    ]


def performance_table(
    result: PerformanceResult, clearance: Classification = Classification.internal
) -> list[dict]:
    frame = _redact_lines(result.lines, clearance, "en")
    return [
        {
            "line": r["code"],
            "amount_cny": f"{to_yuan(int(r['amount_fen'])):,}",
            "spent_cny": f"{to_yuan(int(r['spent_to_date_fen'])):,}",
            "execution": f"{Decimal(int(r['execution_bp'])) / 100:.2f} %",
            "output_target": r["output_target"],
            "outcome": r["outcome"] or "-",
            "assessment": r["assessment"],
        }
        for r in frame.to_dict("records")
    ]
