from tests.budget.conftest import csv_text


def test_smoke(books):
    books.set_year()
    books.line("L-001", "1000000.00", schedule=[("2026-03-01", "500000")])
    books.clock.advance(days=1)
    r = books.import_csv(
        csv_text(
            "V1,2026-03-10,L-001,,200000.00,ACME,x,",
            "V2,2026-03-11,NOPE,,1,ACME,x,",
            "V3,2026-03-11,,,5,ACME,x,",
        )
    )
    print(r)
    a = books.audit("2026-W11")
    print(a.findings.to_string())
    print(a.summary)
    a = books.audit("2026-W11")
    assert a.new_keys == []
