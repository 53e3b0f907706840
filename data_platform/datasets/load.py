"""Load contract files: YAML with line numbers, the official ODCS JSON Schema, then the platform profile.

Every problem names the file, the line, the place in the document and what is expected; all of a
file's problems are reported at once. An unknown or misspelled key is an error, never ignored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from data_platform.contracts import (
    Rule, Series, TableContract, at_least, between, column, greater_than, matches, max_length, one_of, partition_day,
)
from data_platform.datasets import profile
from data_platform.datasets.model import Dataset, Partitioning, Property, Reference, Source

SUFFIX = ".odcs.yaml"
API_VERSIONS = ("v3.1.0", "v3.2.0")
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SOURCE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .\-]{0,127}$")
# A reference to a column of another dataset's contract, found by its file name beside this one.
REFERENCE = re.compile(r"^(?P<file>[a-z][a-z0-9_]*)\.odcs\.yaml#/schema/(?P<dataset>[a-z][a-z0-9_]*)"
                       r"/properties/(?P<column>[a-z][a-z0-9_]*)$")
FORBIDDEN_SQL = re.compile(r";|--|/\*|\b(select|from|attach|copy|pragma|install|load|call|export|import|set)\b", re.I)


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.where or '(document)'}: {self.message}"


class ContractError(Exception):
    """One or more contract files are invalid; the message lists every problem, one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in dataset contracts:\n" + "\n".join(map(str, problems)))


# --- YAML with the line of every node ----------------------------------------------------------

class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe YAML (libyaml when available) that keeps dates as text (the JSON Schema expects strings)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _lines(node: yaml.Node, path: tuple = (), into: Optional[dict] = None) -> dict[tuple, int]:
    """Document path (keys and list indexes) -> 1-based line of the node, for every node."""
    into = {} if into is None else into
    into[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            into[path + (("key", key.value),)] = key.start_mark.line + 1
            _lines(value, path + (key.value,), into)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, path + (index,), into)
    return into


def read_document(path: Path) -> tuple[Any, dict[tuple, int]]:
    """The document and the line of each of its nodes (parsed once per file version)."""
    stat = path.stat()
    return _read_document(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _read_document(path: Path, _mtime: int, _size: int) -> tuple[Any, dict[tuple, int]]:
    loader = _Loader(path.read_text(encoding="utf-8"))
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise ContractError([Problem(path, mark.line + 1 if mark else 1, "", f"not valid YAML: {error}")]) from None
    finally:
        loader.dispose()
    return data, (_lines(node) if node is not None else {(): 1})


def where(path: Iterable) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def line_of(lines: dict, path: tuple) -> int:
    path = tuple(path)
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path, 1)


# --- the official ODCS JSON Schema ----------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _odcs_validator():
    import jsonschema

    spec = importlib.util.find_spec("open_data_contract_standard")
    schema = json.loads((Path(spec.origin).parent / "schema.json").read_text(encoding="utf-8"))
    return jsonschema.validators.validator_for(schema)(schema)


def _schema_problems(file: Path, data: Any, lines: dict) -> list[Problem]:
    problems = []
    for error in sorted(_odcs_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        error = _deepest(error)
        path = tuple(error.absolute_path)
        line = line_of(lines, path)
        unexpected = re.findall(r"'([^']+)' (?:was|were) unexpected", error.message) or re.findall(
            r"\('([^']+)'", error.message) if "unexpected" in error.message else []
        if unexpected:  # point at the unknown key itself
            line = line_of(lines, path + (("key", unexpected[0]),))
            message = f"unknown key {', '.join(repr(u) for u in unexpected)}; ODCS allows: " + _allowed(error)
        elif (error.validator == "required" and "then" in error.absolute_schema_path
              and isinstance(error.instance, dict) and "name" in error.instance and "logicalType" not in error.instance):
            # The ODCS schema's `if logicalType == map then required map` also holds when logicalType is
            # absent, which would read "'map' is a required property"; say what is really missing.
            message = f"a property needs a logicalType: one of {', '.join(profile.PHYSICAL_TYPES)}"
        else:
            message = error.message
        problems.append(Problem(file, line, where(path), message))
    # The ODCS schema can reach one mistake along several branches (allOf/anyOf): say it once.
    return list(dict.fromkeys(problems))


def _deepest(error):
    """Of a oneOf/anyOf failure, the alternative that got furthest (the most specific message)."""
    import jsonschema

    while error.context:
        error = jsonschema.exceptions.best_match(error.context) or error.context[0]
    return error


def _allowed(error) -> str:
    names = set()
    stack = [error.schema]
    while stack:
        schema = stack.pop()
        if isinstance(schema, dict):
            names.update(schema.get("properties", {}))
            for key in ("allOf", "anyOf", "oneOf"):
                stack.extend(schema.get(key, []))
            if "$ref" in schema:
                resolved = _odcs_validator().schema["$defs"].get(schema["$ref"].rsplit("/", 1)[-1], {})
                stack.append(resolved)
    return ", ".join(sorted(names)) or "(see the ODCS schema)"


# --- the platform profile ---------------------------------------------------------------------------

class _Reader:
    """Collects problems while turning one validated ODCS document into a Dataset."""

    def __init__(self, file: Path, lines: dict, trusted: bool = False):
        self.file, self.lines, self.problems, self.trusted = file, lines, [], trusted

    def problem(self, path: tuple, message: str, key: Optional[str] = None) -> None:
        line = line_of(self.lines, path + (("key", key),)) if key else line_of(self.lines, path)
        self.problems.append(Problem(self.file, line, where(path), message))

    def custom(self, element: dict, path: tuple, level: str) -> dict:
        """The element's customProperties as {name: value}, each checked against the profile."""
        allowed = profile_properties(level)
        found = {}
        for index, entry in enumerate(element.get("customProperties") or []):
            name, value = entry.get("property"), entry.get("value")
            at = path + ("customProperties", index)
            if name not in allowed:
                self.problem(at + ("property",), f"unknown platform property {name!r} on a {level}; "
                             f"the profile allows: {', '.join(sorted(allowed))}")
                continue
            if name in found:
                self.problem(at + ("property",), f"{name!r} is given twice")
            errors = [] if self.trusted else list(_profile_validator(name, level).iter_errors(value))
            for error in errors:
                inner = tuple(error.absolute_path)
                self.problem(at + ("value",) + inner, f"{name}: {error.message}")
            if not errors:
                found[name] = value
        return found

    def date(self, text: str, path: tuple) -> Optional[dt.date]:
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            self.problem(path, f"{text!r} is not a date (YYYY-MM-DD)")
            return None

    def zone(self, name: str, path: tuple) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(path, f"{name!r} is not an IANA time zone (e.g. America/New_York, UTC)")
            return "UTC"
        return name


def profile_properties(level: str) -> dict:
    """The platform properties allowed on a level, with their JSON Schemas: the profile's, and on
    the schema object those the check kinds read."""
    if level != "schema":
        return profile.LEVELS[level]
    from data_platform.checks import kinds

    return {**profile.SCHEMA_PROPERTIES, **{name: kind.schema for name, kind in kinds.by_property().items()}}


@functools.lru_cache(maxsize=None)
def _profile_validator(name: str, level: str):
    import jsonschema

    return jsonschema.Draft202012Validator(profile_properties(level)[name])


def strptime_format(jdk: str) -> str:
    """An ODCS (JDK DateTimeFormatter) pattern as a strptime format; ValueError when unsupported."""
    out, index = "", 0
    letters = sorted(profile.JDK_TO_STRPTIME, key=len, reverse=True)
    while index < len(jdk):
        char = jdk[index]
        if char == "'":
            end = jdk.find("'", index + 1)
            if end < 0:
                raise ValueError(f"unterminated quote in {jdk!r}")
            out += jdk[index + 1:end].replace("%", "%%") or "'"
            index = end + 1
            continue
        if char.isalpha():
            token = next((t for t in letters if jdk.startswith(t, index)), None)
            if token is None:
                run = re.match(r"([A-Za-z])\1*", jdk[index:]).group(0)
                raise ValueError(f"unsupported pattern letters {run!r} in {jdk!r}; supported: "
                                 f"{', '.join(profile.JDK_TO_STRPTIME)} and quoted 'text'")
            out += profile.JDK_TO_STRPTIME[token]
            index += len(token)
            continue
        out += "%%" if char == "%" else char
        index += 1
    return out


def jdk_format(strptime: str) -> str:
    """A strptime format as an ODCS (JDK) pattern; ValueError for codes the profile does not map."""
    out, index = "", 0
    while index < len(strptime):
        char = strptime[index]
        if char == "%":
            code = strptime[index:index + 2]
            if code not in profile.STRPTIME_TO_JDK:
                raise ValueError(f"unsupported strptime code {code!r} in {strptime!r}; supported: "
                                 f"{', '.join(profile.STRPTIME_TO_JDK)}")
            out += profile.STRPTIME_TO_JDK[code]
            index += 2
            continue
        out += f"'{char}'" if char.isalpha() else char
        index += 1
    return out


def _sql_type(reader: _Reader, prop: dict, path: tuple) -> str:
    logical = prop.get("logicalType")
    if logical not in profile.PHYSICAL_TYPES:
        reader.problem(path + ("logicalType",), f"logicalType {logical!r} is not supported by the platform; "
                       f"expected one of {', '.join(profile.PHYSICAL_TYPES)}")
        return "VARCHAR"
    allowed = profile.PHYSICAL_TYPES[logical]
    physical = prop.get("physicalType")
    if physical is None:
        options = prop.get("logicalTypeOptions") or {}
        if logical == "integer" and options.get("format"):
            if options["format"] not in profile.INTEGER_FORMATS:
                reader.problem(path + ("logicalTypeOptions", "format"), f"integer format {options['format']!r} is "
                               f"not supported; expected one of {', '.join(profile.INTEGER_FORMATS)}")
                return "INTEGER"
            return profile.INTEGER_FORMATS[options["format"]]
        if logical == "timestamp" and options.get("timezone") is False:
            return "TIMESTAMP"
        return allowed[0]
    spelled = _physical_type(physical)
    if spelled is None:
        reader.problem(path + ("physicalType",), f"physicalType {physical!r} is not a type the platform stores; "
                       f"expected one of {', '.join(allowed)} (common SQL spellings such as varchar(n), int, "
                       "bigint, double and timestamptz are read too)")
        return allowed[0]
    if spelled.size is not None and spelled.max_length is None:
        reader.problem(path + ("physicalType",), f"physicalType {physical!r}: the platform does not enforce a length "
                       f"or precision on {spelled.stored}; write {spelled.stored}")
    elif spelled.stored not in allowed:
        reader.problem(path + ("physicalType",), f"physicalType {physical!r} does not store {_article(logical)} "
                       f"{logical}; expected one of {', '.join(allowed)}")
        return allowed[0]
    return spelled.stored


PHYSICAL_TYPE = re.compile(r"^\s*([a-z][a-z0-9 ]*?)\s*(?:\(\s*(\d+(?:\s*,\s*\d+)?)\s*\))?\s*$")


@dataclass(frozen=True)
class PhysicalType:
    """A physicalType as written: the DuckDB type it is stored as, and its size (`2` in varchar(2))."""

    stored: str
    size: Optional[str]

    @property
    def max_length(self) -> Optional[int]:
        """The length the platform enforces (as a rule): a positive `varchar(n)`; else None."""
        if self.stored == "VARCHAR" and self.size is not None and self.size.isdigit() and int(self.size) > 0:
            return int(self.size)
        return None


def _physical_type(physical) -> Optional[PhysicalType]:
    match = PHYSICAL_TYPE.match(str(physical).lower())
    if match is None or match.group(1) not in profile.PHYSICAL_SPELLINGS:
        return None
    return PhysicalType(profile.PHYSICAL_SPELLINGS[match.group(1)], match.group(2))


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _rules(reader: _Reader, prop: dict, path: tuple, sql_type: str) -> tuple[tuple[Rule, ...], Optional[float]]:
    """Value rules from logicalTypeOptions and ODCS quality metrics; and the max null rate."""
    rules: list[Rule] = []
    options = prop.get("logicalTypeOptions") or {}
    numeric = sql_type in ("INTEGER", "BIGINT", "SMALLINT", "DOUBLE")
    spelled = _physical_type(prop["physicalType"]) if prop.get("physicalType") is not None else None
    if spelled is not None and spelled.max_length is not None:
        rules.append(max_length(spelled.max_length))
    for name, value in options.items():
        at = path + ("logicalTypeOptions", name)
        if name == "pattern":
            try:
                re.compile(value)
            except re.error as error:
                reader.problem(at, f"pattern {value!r} is not a regular expression ({error})")
                continue
            rules.append(matches(value))
        elif name == "maxLength" and sql_type == "VARCHAR":
            rules.append(max_length(value))
        elif name in ("minimum", "maximum", "exclusiveMinimum") and numeric:
            continue  # combined below
        elif name in ("format", "defaultTimezone", "timezone"):
            continue  # typing, read by _property
        else:
            reader.problem(at, f"logicalTypeOptions.{name} is valid ODCS but not enforced by the platform; "
                           "supported: pattern, maxLength (strings), minimum, maximum, exclusiveMinimum (numbers), "
                           "format, defaultTimezone (dates, timestamps)")
    if numeric:
        low, high = options.get("minimum"), options.get("maximum")
        if low is not None and high is not None:
            rules.append(between(low, high))
        elif low is not None:
            rules.append(at_least(low))
        elif high is not None:
            reader.problem(path + ("logicalTypeOptions", "maximum"), "a maximum needs a minimum in the platform "
                           "profile (write the lowest valid value as minimum)")
        if options.get("exclusiveMinimum") is not None:
            rules.append(greater_than(options["exclusiveMinimum"]))
    max_null_rate = None
    for index, check in enumerate(prop.get("quality") or []):
        at = path + ("quality", index)
        metric = check.get("metric")
        if metric == "nullValues" and check.get("unit") == "percent" and "mustBeLessOrEqualTo" in check:
            max_null_rate = check["mustBeLessOrEqualTo"] / 100
        elif metric == "invalidValues" and check.get("mustBe") == 0 and "validValues" in (check.get("arguments") or {}):
            rules.append(one_of(check["arguments"]["validValues"]))
        else:
            reader.problem(at, "quality rule not supported by the platform profile; supported: "
                           "{metric: nullValues, unit: percent, mustBeLessOrEqualTo: N} and "
                           "{metric: invalidValues, arguments: {validValues: [...]}, mustBe: 0}")
    return tuple(rules), max_null_rate


def _property(reader: _Reader, prop: dict, path: tuple) -> Optional[Property]:
    name = prop.get("name", "")
    if name == profile.PARTITION_COLUMN and not prop.get("partitioned"):
        reader.problem(path + ("name",), f"{name!r} is the platform's partition column: declare it with "
                       "partitioned: true (a date, the last part of the key), or name this column otherwise")
        return None
    if not IDENTIFIER.match(name) or name in profile.RESERVED_COLUMNS:
        reader.problem(path + ("name",), f"column name {name!r} must match {IDENTIFIER.pattern} and not be one of "
                       f"the engine's own columns ({', '.join(sorted(profile.RESERVED_COLUMNS))})")
        return None
    custom = reader.custom(prop, path, "property")
    physical = prop.get("physicalName", name)
    if physical != name:
        # ODCS: physicalName is the stored column's name; the platform stores every column under its name.
        reader.problem(path + ("physicalName",), f"physicalName is the name of the stored column in ODCS, and the "
                       f"platform stores this column as {name!r}: write the source file's column name as the platform "
                       f"property sourceName instead (replace `physicalName: {physical}` with "
                       f"`customProperties: [{{property: sourceName, value: {physical}}}]`)")
    source_name = custom.get("sourceName", name)
    if not SOURCE_NAME.match(source_name) or '"' in source_name:
        reader.problem(path + ("customProperties",), f"source column name {source_name!r} must match "
                       f"{SOURCE_NAME.pattern}")
    sql_type = _sql_type(reader, prop, path)
    rules, max_null_rate = _rules(reader, prop, path, sql_type)
    options = prop.get("logicalTypeOptions") or {}
    time_format = None
    if options.get("format") and sql_type in ("DATE", "TIMESTAMP", "TIMESTAMPTZ"):
        try:
            time_format = strptime_format(options["format"])
        except ValueError as error:
            reader.problem(path + ("logicalTypeOptions", "format"), f"malformed date format: {error}")
    elif sql_type == "DATE":
        time_format = "%Y-%m-%d"
    zone = reader.zone(options.get("defaultTimezone", "UTC"), path + ("logicalTypeOptions", "defaultTimezone"))
    if "plausibleRange" in custom or "maxJump" in custom:
        if sql_type not in ("INTEGER", "BIGINT", "SMALLINT", "DOUBLE"):
            reader.problem(path + ("customProperties",), "plausibility rules need a numeric column")
    references = []
    for index, relation in enumerate(prop.get("relationships") or []):
        at = path + ("relationships", index)
        target = relation.get("to")
        match = REFERENCE.match(target) if isinstance(target, str) else None
        if match is None or match["file"] != match["dataset"]:
            old = re.match(r"^([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)$", target) if isinstance(target, str) else None
            dataset, column = old.groups() if old else ("DATASET", "COLUMN")
            reader.problem(at + ("to",), f"references another dataset's contract as `to: {dataset}{SUFFIX}#/schema/"
                           f"{dataset}/properties/{column}` (ODCS fully qualified notation, resolved by the ids "
                           f"of that contract's schema object and property); in ODCS `{dataset}.{column}` would "
                           "name a table of this contract")
            continue
        if relation.get("type") != "foreignKey":
            reader.problem(at, "a relationship needs `type: foreignKey` (ODCS tools read it)", key="to")
        rel_custom = reader.custom(relation, at, "relationship")
        target_dataset, target_column = match["dataset"], match["column"]
        references.append(Reference(name, target_dataset, target_column, rel_custom.get("maxUnknownShare", 0.0),
                                    rel_custom.get("severity", "warn"), relation.get("description", "")))
    transform = prop.get("transformLogic")
    if transform is not None and FORBIDDEN_SQL.search(transform):
        reader.problem(path + ("transformLogic",), "transformLogic must be one SQL expression over the dataset's "
                       "columns: no statements, subqueries, comments or ';'")
    key_position = prop.get("primaryKeyPosition") if prop.get("primaryKey") else None
    if prop.get("primaryKey") and (key_position is None or key_position < 1):
        reader.problem(path + ("primaryKeyPosition",), "a primaryKey column needs primaryKeyPosition 1, 2, ...")
    return Property(
        name=name, source_name=source_name, sql_type=sql_type, description=prop.get("description", ""),
        required=bool(prop.get("required")), key_position=key_position, rules=rules,
        plausible=tuple(custom["plausibleRange"]) if "plausibleRange" in custom else None,
        max_jump=custom.get("maxJump"), max_null_rate=max_null_rate, time_format=time_format, time_zone=zone,
        allow_exponent=bool(custom.get("allowExponent")), transform=transform,
        transform_sources=tuple(prop.get("transformSourceObjects") or ()), references=tuple(references),
    )


def _source(reader: _Reader, value: dict, path: tuple, name: str) -> Source:
    kind = value["type"]
    fmt = value.get("format")
    at = path + ("value",)
    if kind == "landing":
        return Source("landing", path=value.get("path", name), format=fmt or "csv")
    if not value.get("path"):
        reader.problem(at, f"a {kind} source needs a path")
        return Source(kind)
    if kind == "package" and not value.get("package"):
        reader.problem(at, "a package source needs the package's import name")
    suffixes = Path(value["path"]).suffixes
    fmt = fmt or ("parquet" if ".parquet" in suffixes else "csv")
    return Source(kind, path=value["path"], package=value.get("package", ""), format=fmt)


def read_contract(file: Path) -> Dataset:
    """One contract file as a Dataset; ContractError lists every problem found in it."""
    return _read(Path(file), _read_validated)


def read_table_contract(file: Path) -> TableContract:
    """The ODCS contract of a table the platform computes (the ML graph's), validated like a dataset
    contract (the ODCS schema, then the platform profile's column rules); ContractError lists every
    problem. One schema object, `physicalName: <layer>.<table>`, no source, no custom properties."""
    return _read(Path(file), _table_contract)


def _read(file: Path, read_validated):
    """A contract file read by `read_validated(file, data, lines, trusted)` once it passes the ODCS schema.

    A file whose exact text passed every check before (same schema, same platform code) is not
    validated again: every process that loads the code location reads the contracts.
    """
    data, lines = read_document(file)
    if not isinstance(data, dict):
        raise ContractError([Problem(file, 1, "", "a contract is a YAML mapping (apiVersion, kind, schema, ...)")])
    marker = _validated_marker(file)
    trusted = marker.exists()
    problems = [] if trusted else _schema_problems(file, data, lines)
    if problems:
        raise ContractError(problems)
    read = read_validated(file, data, lines, trusted)
    if not trusted:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    return read


def _validated_marker(file: Path) -> Path:
    from data_platform.settings import home_path

    from data_platform.checks import kinds

    read_by = tuple(sorted({Path(kind.read.__code__.co_filename) for kind in kinds.registered()}))
    digest = hashlib.sha256(_validator_fingerprint(read_by).encode() + file.read_bytes()).hexdigest()
    return home_path("cache", "contracts", f"{digest}.valid")


@functools.lru_cache(maxsize=4)
def _validator_fingerprint(read_by: tuple[Path, ...]) -> str:
    """Changes with the ODCS schema and with the platform's validation code (the profile, this module
    and the files of the check kinds' `read`)."""
    spec = importlib.util.find_spec("open_data_contract_standard")
    parts = [Path(spec.origin).parent / "schema.json", Path(__file__), Path(profile.__file__), *read_by]
    return hashlib.sha256(b"".join(path.read_bytes() for path in parts)).hexdigest()


def _named_reader(file: Path, data: dict, lines: dict, trusted: bool, what: str) -> tuple[_Reader, str, dict]:
    """A reader with the document's own problems (its apiVersion, its name against the file name), the
    name, and the one schema object (the table)."""
    reader = _Reader(file, lines, trusted)
    if data["apiVersion"] not in API_VERSIONS:
        reader.problem(("apiVersion",), f"apiVersion {data['apiVersion']} is not supported; expected one of "
                       f"{', '.join(API_VERSIONS)}")
    name = data.get("name", "")
    expected = file.name[: -len(SUFFIX)] if file.name.endswith(SUFFIX) else file.stem
    if not IDENTIFIER.match(name):
        reader.problem(("name",), f"{what} name {name!r} must match {IDENTIFIER.pattern} (it names tables and assets)")
    elif name != expected:
        reader.problem(("name",), f"{what} name {name!r} must match the file name {expected}{SUFFIX}")
    schemas = data.get("schema") or []
    if len(schemas) != 1:
        reader.problem(("schema",), f"a {what} contract has exactly one schema object (the table); found {len(schemas)}")
        raise ContractError(reader.problems)
    return reader, name, schemas[0]


def _table_contract(file: Path, data: dict, lines: dict, trusted: bool) -> TableContract:
    reader, name, table = _named_reader(file, data, lines, trusted, "table")
    at = ("schema", 0)
    layer, _, stored = str(table.get("physicalName", "")).partition(".")
    if table.get("name") != name or stored != name or not IDENTIFIER.match(layer):
        reader.problem(at, f"name the schema object {name!r} like the contract, with physicalName: <layer>.{name}",
                       key="physicalName")
    if table.get("customProperties"):
        reader.problem(at + ("customProperties",), "a table the platform computes has no source, partitioning or "
                       "check properties (its asset computes it, its partitions follow its inputs)")
    declared = table.get("properties") or []
    partition_index = [i for i, prop in enumerate(declared) if prop.get("partitioned")]
    properties = [(i, p) for i, p in ((i, _property(reader, prop, at + ("properties", i)))
                                      for i, prop in enumerate(declared) if i not in partition_index) if p is not None]
    for index, p in properties:
        if p.source_name != p.name or p.transform or p.references or p.plausible or p.max_jump:
            reader.problem(at + ("properties", index), f"{p.name}: a computed table's column has a type, rules and "
                           "a description only (no sourceName, transformLogic, relationships or plausibility)")
    properties = [p for _, p in properties]
    declared_day, transform_path = _partition_property(reader, declared, partition_index, at, properties, {})
    if transform_path:
        reader.problem(transform_path, "a computed table's partition is its asset's partition, not an expression")
    if reader.problems:
        raise ContractError(reader.problems)
    partitioned = bool(partition_index)
    keyed = sorted((p for p in properties if p.key_position is not None), key=lambda p: p.key_position)
    return TableContract(
        name=f"{layer}.{name}",
        description=table.get("description") or (data.get("description") or {}).get("purpose", ""),
        columns={
            **({"day": partition_day(declared_day.get("description", ""))} if partitioned else {}),
            **{p.name: column(p.sql_type, p.description, not p.required, p.rules, max_null_rate=p.max_null_rate)
               for p in properties},
        },
        unique=tuple(p.name for p in keyed) + (("day",) if partitioned else ()),
        partitioned=partitioned,
    )


def _read_validated(file: Path, data: dict, lines: dict, trusted: bool) -> Dataset:
    reader, name, table = _named_reader(file, data, lines, trusted, "dataset")
    at = ("schema", 0)
    if table.get("name") != name:
        reader.problem(at + ("name",), f"the schema object is named {table.get('name')!r}; name it {name!r} like the dataset")
    custom = reader.custom(table, at, "schema")
    declared = table.get("properties") or []
    partition_index = [i for i, prop in enumerate(declared) if prop.get("partitioned")]
    properties = [p for p in (_property(reader, prop, at + ("properties", i))
                              for i, prop in enumerate(declared) if i not in partition_index) if p is not None]
    names = [p.name for p in properties]
    for duplicate in sorted({n for n in names if names.count(n) > 1}):
        reader.problem(at + ("properties",), f"column {duplicate!r} is declared more than once")
    if not properties:
        reader.problem(at + ("properties",), "a dataset needs at least one property (column)")
    elif not any(p.key_position is not None for p in properties) and not reader.problems:
        # Cleaning deduplicates on the key: without one, every row would conflict with every other.
        reader.problem(at, "a dataset needs a key: mark the column(s) that identify a row with primaryKey: true "
                       "and primaryKeyPosition 1, 2, ... (per partition when partitioned)", key="properties")
    cp_index = {entry.get("property"): i for i, entry in enumerate(table.get("customProperties") or [])}

    def cp_path(prop_name: str) -> tuple:
        return at + ("customProperties", cp_index.get(prop_name, 0), "value")

    if "source" not in custom:
        if "source" not in cp_index:
            reader.problem(at, "the platform needs a `source` custom property (where the data comes from)",
                           key="customProperties")
        source = Source("landing", path=name)
    else:
        source = _source(reader, custom["source"], cp_path("source")[:-1], name)

    partitioning = None
    declared_day, expression_path = _partition_property(reader, declared, partition_index, at, properties,
                                                        custom.get("partitioning"))
    if "partitioning" in custom:
        value, pp = dict(custom["partitioning"]), cp_path("partitioning")
        expression_path = pp + ("expression",) if value.get("expression") else expression_path
        if declared_day.get("transformLogic"):
            if value.get("expression") or value.get("column"):
                reader.problem(pp, "the partition is given twice: as the partitioned property's transformLogic and "
                               "here; keep the transformLogic")
            value["expression"] = declared_day["transformLogic"]
        start = reader.date(value["start"], pp + ("start",))
        end = reader.date(value["end"], pp + ("end",)) if "end" in value else None
        if start and end and end < start:
            reader.problem(pp + ("end",), f"end {end} is before start {start}")
        if value.get("column") and value.get("expression"):
            reader.problem(pp, "give the partition as a column or as an expression, not both")
        if value.get("column") and value["column"] not in names:
            reader.problem(pp + ("column",), f"partition column {value['column']!r} is not a property of {name}")
        elif value.get("column") and next(p for p in properties if p.name == value["column"]).sql_type not in (
                "DATE", "TIMESTAMP", "TIMESTAMPTZ"):
            reader.problem(pp + ("column",), f"partition column {value['column']!r} must be a date or timestamp")
        if value.get("expression") and FORBIDDEN_SQL.search(value["expression"]):
            reader.problem(pp + ("expression",), "the partition expression must be one SQL expression over the "
                           "dataset's columns")
        if source.type != "landing" and not (value.get("column") or value.get("expression")):
            reader.problem(pp, f"a {source.type} source holds every partition in one file: name the partition "
                           "`column` or an `expression` that gives each row's date")
        partitioning = Partitioning(
            cadence=value["cadence"], start=start or dt.date(1970, 1, 1), end=end,
            time_zone=reader.zone(value.get("timezone", "UTC"), pp + ("timezone",)),
            column=value.get("column"), expression=value.get("expression"),
            description=declared_day.get("description", ""),
        )
    series = None
    if "plausibilitySeries" in custom:
        value, sp = custom["plausibilitySeries"], cp_path("plausibilitySeries")
        for part in ("group", "time"):
            if value[part] not in names:
                reader.problem(sp + (part,), f"{value[part]!r} is not a property of {name}")
        series = Series(value["group"], value["time"], value["maxGapHours"])
    if any(p.max_jump is not None for p in properties) and series is None:
        reader.problem(at, "maxJump rules need a `plausibilitySeries` custom property (group, time, maxGapHours)",
                       key="customProperties")
    for index, column in enumerate(custom.get("sampleBy", ())):
        if column not in names:
            reader.problem(cp_path("sampleBy") + (index,), f"sampleBy column {column!r} is not a property of {name}")
    for index, prop in enumerate(properties):
        for source_name in prop.transform_sources:
            if source_name not in names:
                reader.problem(at + ("properties", index, "transformSourceObjects"),
                               f"{source_name!r} is not a property of {name}")
    latency = None
    for index, sla in enumerate(data.get("slaProperties") or []):
        if sla.get("property") in ("latency", "freshness"):
            hours = _hours(sla.get("value"), sla.get("unit", "h"))
            if hours is None:
                reader.problem(("slaProperties", index), "latency/freshness needs a number `value` and a `unit` "
                               "of h (hours) or d (days)")
            else:
                latency = hours
    team = data.get("team")
    owner = team.get("name") if isinstance(team, dict) and team.get("name") else "data-platform"
    description = data.get("description") or {}
    dataset = Dataset(
        name=name, path=file, description=table.get("description") or description.get("purpose", ""),
        owner=f"team:{owner}", properties=tuple(properties), source=source, partitioning=partitioning,
        series=series,
        freshness_lag_hours={"raw": 1, "cleaned": 2, **custom.get("freshnessLagHours", {})},
        latency_hours=latency, sample_by=tuple(custom.get("sampleBy", ())),
        version=str(data.get("version", "")),
    )
    dataset = dataclasses.replace(dataset, checks=_check_kinds(reader, dataset, custom, cp_path))
    if not reader.problems and not trusted:
        reader.problems.extend(_expression_problems(dataset, file, lines, expression_path))
    if reader.problems:
        raise ContractError(reader.problems)
    return dataset


def _check_kinds(reader: _Reader, dataset: Dataset, custom: dict, value_path) -> dict:
    """What each check kind reads from the schema object's customProperties, read by that kind."""
    from data_platform.checks import kinds

    found = {}
    for name, kind in kinds.by_property().items():
        if name in custom:
            at = value_path(name)
            found[name] = kind.read(custom[name], dataset,
                                    lambda path, message, at=at: reader.problem(at + tuple(path), message))
    return found


def _hours(value, unit: str) -> Optional[float]:
    if not isinstance(value, (int, float)):
        return None
    factor = {"h": 1, "hour": 1, "hours": 1, "d": 24, "day": 24, "days": 24, "m": 1 / 60, "min": 1 / 60}.get(unit)
    return value * factor if factor else None


def _partition_property(reader: _Reader, declared: list, indexes: list[int], at: tuple, properties: list[Property],
                        partitioning: Optional[dict]) -> tuple[dict, Optional[tuple]]:
    """The declared partition column (`partitioned: true`), checked; and the path of its transformLogic.

    It is optional (the platform adds the column either way); declared, the key is complete as written.
    """
    if not indexes:
        return {}, None
    name = profile.PARTITION_COLUMN
    for index in indexes[1:]:
        reader.problem(at + ("properties", index, "partitioned"), "the platform partitions by one column: declare "
                       f"one property with partitioned: true (named {name})")
    prop, path = declared[indexes[0]], at + ("properties", indexes[0])
    if partitioning is None:
        reader.problem(path + ("partitioned",), "partitioned: true needs the `partitioning` custom property "
                       "(cadence, start, timezone) on the schema object")
    expected = {"name": name, "logicalType": "date", "required": True, "primaryKey": True}
    for key, value in expected.items():
        if prop.get(key) != value:
            reader.problem(path + (key,), f"the partition column is `{name}`, a required date and the last part of "
                           f"the key: give it {key}: {json.dumps(value)}")
    if prop.get("physicalType", "DATE").upper() != "DATE":
        reader.problem(path + ("physicalType",), "the partition column is stored as DATE")
    last = max((p.key_position for p in properties if p.key_position is not None), default=0) + 1
    if prop.get("primaryKey") and prop.get("primaryKeyPosition") != last:
        reader.problem(path + ("primaryKeyPosition",), f"the partition column comes last in the key: "
                       f"primaryKeyPosition: {last}")
    if prop.get("partitionKeyPosition", 1) != 1:
        reader.problem(path + ("partitionKeyPosition",), "the only partition column has partitionKeyPosition: 1")
    unsupported = sorted(set(prop) - {"id", "name", "logicalType", "physicalType", "required", "primaryKey",
                                      "primaryKeyPosition", "partitioned", "partitionKeyPosition", "description",
                                      "transformLogic", "transformSourceObjects"})
    for key in unsupported:
        reader.problem(path + (key,), f"{key} is not read on the partition column (the platform computes it)")
    names = {p.name for p in properties}
    for index, source in enumerate(prop.get("transformSourceObjects") or ()):
        if source not in names:
            reader.problem(path + ("transformSourceObjects", index), f"{source!r} is not a property")
    transform = prop.get("transformLogic")
    if transform is not None and FORBIDDEN_SQL.search(transform):
        reader.problem(path + ("transformLogic",), "the partition expression must be one SQL expression over the "
                       "dataset's columns")
    return prop, (path + ("transformLogic",) if transform else None)


def _expression_problems(dataset: Dataset, file: Path, lines: dict,
                         partition_path: Optional[tuple]) -> list[Problem]:
    """Run every SQL expression of the contract over an empty table of its typed columns."""
    import duckdb

    problems = []
    conn = _scratch().cursor()
    try:
        columns = ", ".join(f'"{p.name}" {p.sql_type}' for p in dataset.source_properties)
        conn.execute(f"CREATE OR REPLACE TEMP TABLE typed ({columns})")
        checks = [(("schema", 0, "properties", i, "transformLogic"), p.transform, p.sql_type)
                  for i, p in enumerate(dataset.properties) if p.derived]
        if dataset.partitioning and dataset.partitioning.expression:
            checks.append((partition_path, dataset.partitioning.expression, "DATE"))
        for path, expression, sql_type in checks:
            try:
                conn.execute(f"SELECT CAST(({expression}) AS {sql_type}) FROM typed")
            except duckdb.Error as error:
                message = str(error).splitlines()[0]
                problems.append(Problem(file, line_of(lines, path), where(path),
                                        f"SQL expression {expression!r} does not work over the dataset's typed "
                                        f"columns: {message}"))
    finally:
        conn.close()
    return problems


@functools.lru_cache(maxsize=1)
def _scratch():
    """An in-memory DuckDB to try contract expressions in."""
    import duckdb

    return duckdb.connect()
