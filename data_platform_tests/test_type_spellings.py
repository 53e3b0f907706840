"""physicalType as other ODCS tools write it: common SQL spellings are read and normalized, a length
`varchar(n)` is enforced (longer values are quarantined with the reason), and a length or precision
the platform cannot enforce is refused with a message that says so."""

from __future__ import annotations

import pytest
from dagster import materialize

from data_platform import settings
from data_platform.datasets import ContractError
from data_platform.datasets.load import read_contract

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:data-platform:dataset:codes
name: codes
version: 1.0.0
status: active
schema:
  - name: codes
    physicalType: table
    customProperties:
      - property: source
        value: {type: file, path: codes.csv}
    properties:
      - name: code
        logicalType: string
        physicalType: varchar(2)
        primaryKey: true
        primaryKeyPosition: 1
      - name: label
        logicalType: string
        physicalType: text
      - name: small
        logicalType: integer
        physicalType: smallint
      - name: count
        logicalType: integer
        physicalType: int
      - name: total
        logicalType: integer
        physicalType: BigInt
      - name: share
        logicalType: number
        physicalType: double
      - name: ratio
        logicalType: number
        physicalType: real
      - name: active
        logicalType: boolean
        physicalType: boolean
      - name: since
        logicalType: date
        physicalType: date
      - name: seen
        logicalType: timestamp
        physicalType: timestamptz
      - name: local
        logicalType: timestamp
        physicalType: timestamp
"""
ROWS = """code,label,small,count,total,share,ratio,active,since,seen,local
AB,first,1,2,3,0.5,0.25,true,2013-01-02,2013-01-02 10:00:00+00,2013-01-02 10:00:00
ABC,too long,1,2,3,0.5,0.25,false,2013-01-02,2013-01-02 10:00:00+00,2013-01-02 10:00:00
"""


@pytest.fixture
def contracts(tmp_path, monkeypatch):
    folder = tmp_path / "contracts"
    folder.mkdir()
    monkeypatch.setenv(settings.DATASETS_ENV, str(folder))
    (folder / "codes.csv").write_text(ROWS)
    return folder


def write(folder, text):
    path = folder / "codes.odcs.yaml"
    path.write_text(text)
    return path


def test_sql_spellings_are_read_as_the_types_they_name(contracts):
    dataset = read_contract(write(contracts, CONTRACT))
    types = {p.name: p.sql_type for p in dataset.properties}
    assert types == {"code": "VARCHAR", "label": "VARCHAR", "small": "SMALLINT", "count": "INTEGER",
                     "total": "BIGINT", "share": "DOUBLE", "ratio": "DOUBLE", "active": "BOOLEAN", "since": "DATE",
                     "seen": "TIMESTAMPTZ", "local": "TIMESTAMP"}
    assert [rule.text() for rule in dataset.prop("code").rules] == ["at most 2 characters"]
    assert dataset.prop("label").rules == ()


@pytest.mark.parametrize("spelling, message", [
    ("int(11)", "physicalType 'int(11)': the platform does not enforce a length or precision on INTEGER; write INTEGER"),
    ("decimal(10,2)", "physicalType 'decimal(10,2)' is not a type the platform stores; expected one of INTEGER"),
    ("numeric", "physicalType 'numeric' is not a type the platform stores"),
    ("varchar(2)", "physicalType 'varchar(2)' does not store an integer; expected one of INTEGER, BIGINT, SMALLINT"),
])
def test_a_spelling_the_platform_cannot_honour_is_refused_saying_why(contracts, spelling, message):
    text = CONTRACT.replace("        physicalType: int\n", f"        physicalType: {spelling}\n")
    path = write(contracts, text)
    with pytest.raises(ContractError) as raised:
        read_contract(path)
    (problem,) = raised.value.problems
    assert problem.line == text.splitlines().index("      - name: count") + 3  # its physicalType line
    assert message in problem.message, problem.message


def test_varchar_length_is_enforced_by_quarantine(contracts, instance, resources, warehouse):
    from data_platform.components.datasets import dataset_definitions

    defs = dataset_definitions(read_contract(write(contracts, CONTRACT)))
    result = materialize([*defs.assets, *defs.asset_checks], instance=instance, resources=resources,
                         selection=["raw/codes", "cleaned/codes"], raise_on_error=False)
    assert result.success
    with warehouse() as conn:
        kept = conn.sql("SELECT code, seen FROM cleaned.codes").fetchall()
        quarantined = conn.sql("SELECT code, reason FROM quarantine.codes").fetchall()
    assert [row[0] for row in kept] == ["AB"]
    ((code, reason),) = quarantined
    assert code == "ABC" and "code" in reason and "at most 2 characters" in reason, reason
