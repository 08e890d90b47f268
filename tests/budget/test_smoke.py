from taskforce.budget.performance import run_performance_audit
from taskforce.budget.report import write_audit_reports, write_performance_reports
from tests.budget.conftest import csv_text


def test_smoke(books, tmp_path):
    books.set_year()
    books.line("L-001", "1000000.00", schedule=[("2026-03-01", "500000")])
    books.clock.advance(days=1)
    books.import_csv(
        csv_text("V1,2026-03-10,L-001,,200000.00,ACME,x,", "V3,2026-03-11,,,5,ACME,x,")
    )
    a = books.audit("2026-W11")
    paths = write_audit_reports(a, tmp_path)
    print(paths["md"].read_text())
    with books.tx() as s:
        p = run_performance_audit(s, books.ctx, "2026-H1")
    paths = write_performance_reports(p, tmp_path)
    print(paths["md"].read_text())
    print(paths["html_zh-CN"].read_text()[-800:])
