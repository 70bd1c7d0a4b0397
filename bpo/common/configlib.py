"""Typed, validated configuration: nested dataclasses loaded from YAML plus dotted overrides.

* A config is a tree of dataclasses. Each field's help text (and optional allowed values) lives in
  its metadata, declared with :func:`option`, so one declaration feeds loading, checking and
  ``--help`` (:func:`describe`): ``steps: int = option(100, help="optimisation steps")``.
* :func:`load_config` reads a YAML mapping, applies overrides such as ``schedule.steps=40`` (values
  parsed as YAML), type-checks every field and its choices, then calls the optional
  ``validate(self)`` of every dataclass, innermost first. A section given only in part keeps the
  rest of its default (that of the enclosing field, e.g. ``default_factory=lambda: S(steps=5)``).
* Every problem is a :class:`ConfigError`: one line naming the origin (``file:line`` or
  ``override 'k=v'``) and the dotted key. A YAML file that repeats a key in one mapping is refused
  (PyYAML would keep the last value silently); so is a file that is not UTF-8 text.
* A float field never takes NaN (``.nan`` in YAML); ranges are checked by each section's ``validate``.
* Types are strict (no ``1`` for a bool, no ``true`` for an int; an int is accepted for a float),
  except that a str field given a bare scalar on the command line (``tag=2024``, ``name=on``)
  keeps the text as typed, because shells make quoting awkward.
* :func:`to_dict` / :func:`dump_yaml` write a resolved config that loads back unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import MISSING
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")
Key = tuple[str, ...]  # a dotted key, split: ("schedule", "steps")
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
_SUPPORTED = (bool, int, float, str, list, tuple, dict, Union, types.UnionType)  # and paths


class ConfigError(ValueError):
    """A configuration problem, described in one line that a user can act on."""


def option(
    default: Any = MISSING,
    *,
    help: str,
    choices: Sequence[Any] | None = None,
    default_factory: Any = MISSING,
    may_change_on_resume: bool = False,
) -> Any:
    """A ``dataclasses.Field`` whose metadata carries ``help`` and ``choices`` (checked on load), and
    whether a resumed run may give the field (a whole section, for a nested config) another value than
    the run started with (see :func:`fixed_settings`).

    Typed ``Any``, like ``dataclasses.field``, so that ``x: int = option(1, help="")`` type-checks.
    """
    return dataclasses.field(
        default=default,
        default_factory=default_factory,
        metadata={"help": help, "choices": choices, "may_change_on_resume": may_change_on_resume},
    )


def fixed_settings(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf setting of a config that a resume must not change, as {dotted key: plain value}: the
    fields not marked ``may_change_on_resume`` (a marked section is left out whole); a mapping's entries
    are leaves of their own (``section.field.key``)."""
    flat: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.init and not f.metadata.get("may_change_on_resume"):
            _flatten(flat, f"{prefix}{f.name}", getattr(obj, f.name))
    return flat


def _flatten(flat: dict[str, Any], key: str, value: Any) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        flat.update(fixed_settings(value, key + "."))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(flat, f"{key}.{k}", v)
    else:
        flat[key] = _plain(value)


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build ``cls`` from the YAML mapping in ``path`` (if any) with ``key.sub=value`` overrides."""
    data: dict[Any, Any] = {}
    where: dict[Key, str] = {}
    if path is not None:
        data, where = _read_yaml(Path(path))
    raw: dict[Key, str] = {}
    for item in overrides:
        _apply_override(data, item, where, raw)
    source = str(path) if path is not None else "<command line>"
    return _load(cls, data, _Context(source, where, raw))


def refuse_repeated_keys(overrides: Sequence[str]) -> None:
    """A key given twice on the command line (`beta=0.1 beta=2.0`, or a section and then a key in it) is refused,
    as a YAML file's repeated key is: the last would win silently. Only the user's own list is checked; the
    sweeps layer override lists on purpose."""
    seen: dict[Key, str] = {}
    for item in overrides:
        key = tuple(item.partition("=")[0].strip().split("."))
        for earlier_key, earlier in seen.items():
            shared = min(len(key), len(earlier_key))
            if key[:shared] == earlier_key[:shared]:
                raise ConfigError(
                    f"override '{item}': {_dotted(key)} is given twice on the command line (first: '{earlier}'); "
                    "give each key once"
                )
        seen[key] = item


def config_from_dict(cls: type[T], data: Mapping[str, Any], source: str = "<dict>", overrides: Sequence[str] = ()) -> T:
    """Build ``cls`` from an in-memory mapping (and ``key.sub=value`` overrides), with the same checks as
    :func:`load_config`."""
    data = copy.deepcopy(data)
    where: dict[Key, str] = {}
    raw: dict[Key, str] = {}
    for item in overrides:
        _apply_override(data, item, where, raw)
    return _load(cls, data, _Context(source, where, raw))


def to_dict(obj: Any) -> dict[str, Any]:
    """A config as plain nested dicts/lists/scalars (paths as str, tuples as lists)."""
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
        raise TypeError(f"to_dict expects a dataclass instance, got {type(obj).__name__}")
    return _plain(obj)


def dump_yaml(obj: Any, path: Path) -> None:
    """Write the resolved config, keeping the declaration order of the fields."""
    Path(path).write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """``(dotted key, type name, default repr, help)`` for every leaf field, for ``--help``."""
    rows: list[tuple[str, str, str, str]] = []
    _describe(cls, (), None, rows)
    return rows


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, tuple[int, int]] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                here = (key_node.start_mark.line, key_node.start_mark.column)  # two keys may share a line: {a: 1, a: 2}
                try:
                    key = self.construct_object(key_node, deep=True)
                    first = seen.setdefault(key, here)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if first != here:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {first[0] + 1})", key_node.start_mark
                    )
        return super().construct_mapping(node, deep)


def read_text_file(path: Path, what: str, error: type[ValueError] = ConfigError) -> str:
    """The text of a UTF-8 file (BOM dropped); a missing, unreadable, non-UTF-8 or gzip-compressed file,
    or a folder, is an `error` naming the file (and the line of a bad byte)."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a folder, expected a {what}")
    try:
        data = path.read_bytes()
    except OSError as e:
        why = "not found" if isinstance(e, FileNotFoundError) else f"unreadable ({e.strerror or e})"
        raise error(f"{path}: {what} {why}") from None
    if data[:2] == b"\x1f\x8b":
        raise error(f"{path}: is gzip-compressed; decompress it first (gunzip)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as UTF-8") from None


def parse_yaml(text: str, name: str) -> tuple[Any, yaml.Node | None]:
    """(data, node tree with line numbers) of a YAML text; errors name `name`:line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)  # the node tree has the line numbers
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{name}{line}: invalid YAML: {problem}") from None
    return data, node


def _read_yaml(path: Path) -> tuple[dict[Any, Any], dict[Key, str]]:
    data, node = parse_yaml(read_text_file(path, "config file"), str(path))
    if data is None:  # an empty file means "all defaults"
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {_show(data)}")
    where: dict[Key, str] = {}
    _record_lines(node, (), str(path), where)
    return data, where


def _record_lines(node: yaml.Node, key: Key, name: str, where: dict[Key, str]) -> None:
    # (key part, node whose line is reported, child): a mapping entry reports its key's line.
    children: list[tuple[str, yaml.Node, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        children = [(str(k.value), k, v) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = [(str(i), v, v) for i, v in enumerate(node.value)]
    for part, marked, child in children:
        where[key + (part,)] = f"{name}:{marked.start_mark.line + 1}"
        _record_lines(child, key + (part,), name, where)


def _apply_override(data: dict[Any, Any], item: str, where: dict[Key, str], raw: dict[Key, str]) -> None:
    label = f"override '{item}'"
    key_text, eq, value_text = item.partition("=")
    key = tuple(key_text.strip().split("."))
    if not eq or not all(key):
        raise ConfigError(f"{label}: expected key=value")
    try:
        value = yaml.load(value_text, Loader=UniqueKeyLoader)
    except yaml.constructor.ConstructorError as err:  # a key given twice inside the value: {kind: a, kind: b}
        raise ConfigError(f"{label}: {err.problem.partition(' (first')[0]} in the value") from None
    except yaml.YAMLError:
        raise ConfigError(f"{label}: cannot parse {value_text!r} as a YAML value") from None
    node = data
    for i in range(1, len(key)):
        if key[:i] not in where:  # a section the file did not mention: blame the override
            where[key[:i]] = label
        node = node.setdefault(key[i - 1], {})
        if not isinstance(node, dict):
            raise ConfigError(f"{label}: '{_dotted(key[:i])}' is not a section, cannot set '{key_text}'")
    node[key[-1]] = value
    # The new value replaces whatever the file (or an earlier override) said at or below this key.
    for table in (where, raw):
        for old in [k for k in table if k[: len(key)] == key]:
            del table[old]
    where[key], raw[key] = label, value_text.strip()


@dataclasses.dataclass
class _Context:
    source: str  # file name, "<dict>" or "<command line>": blamed when nothing better is known
    where: dict[Key, str]  # key -> "file:line" or "override 'k=v'"
    raw: dict[Key, str]  # override key -> its value text as typed (for str fields)
    validators: list[tuple[Key, Any]] = dataclasses.field(default_factory=list)

    def error(self, key: Key, message: str) -> ConfigError:
        # The most specific known origin: the key itself, else its closest enclosing section.
        for n in range(len(key), 0, -1):
            if key[:n] in self.where:
                return ConfigError(f"{self.where[key[:n]]}: {message}")
        return ConfigError(f"{self.source}: {message}")


def _load(cls: type[T], data: Any, ctx: _Context) -> T:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"expected a dataclass type, got {cls!r}")
    config = _build(cls, data, (), ctx)
    # Validators run only once every field has been type-checked; they were recorded post-order,
    # so a sub-config's own checks run before those of the config that contains it.
    for key, obj in ctx.validators:
        try:
            obj.validate()
        except ValueError as e:
            raise _prefixed(key, e) from e
    return config


def _build(cls: type, value: Any, key: Key, ctx: _Context, base: Any = None) -> Any:
    # `base`: the enclosing field's default instance, if any, whose values fill keys not given.
    if not isinstance(value, Mapping):
        what = f"'{_dotted(key)}'" if key else "the top level"
        raise ctx.error(key, f"{what} must be a mapping (section {cls.__name__}), got {_show(value)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for k in value:
        if str(k) not in fields:
            scope = f"allowed keys of '{_dotted(key)}'" if key else "allowed top-level keys"
            close = difflib.get_close_matches(str(k), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ctx.error(
                key + (str(k),), f"unknown key '{_dotted(key + (str(k),))}'; {scope}: {', '.join(fields)}{hint}"
            )
    hints = get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            sub = key + (name,)
            kwargs[name] = _convert(hints[name], value[name], sub, ctx, _default(f, base))
            if f.metadata.get("choices") is not None:
                _check_choice(f.metadata["choices"], kwargs[name], sub, ctx)
        elif base is not None:
            kwargs[name] = getattr(base, name)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ctx.error(key, f"missing required key '{_dotted(key + (name,))}'")
    try:
        obj = cls(**kwargs)
    except ValueError as e:  # a __post_init__ check
        raise _prefixed(key, e) from e
    if callable(getattr(obj, "validate", None)):
        ctx.validators.append((key, obj))
    return obj


def _convert(tp: Any, value: Any, key: Key, ctx: _Context, base: Any = None) -> Any:
    origin, args = get_origin(tp) or tp, get_args(tp)
    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, key, ctx, base if isinstance(base, tp) else None)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        alternatives = [a for a in args if a is not type(None)]
        if len(alternatives) == 1:  # Optional[X]: let X give its own precise message
            return _convert(alternatives[0], value, key, ctx, base)
        for alt in alternatives:
            mark = len(ctx.validators)
            try:
                return _convert(alt, value, key, ctx)
            except ConfigError:
                del ctx.validators[mark:]  # forget sub-configs of the failed alternative
    elif origin is Literal:
        _check_choice(args, value, key, ctx)
        return value
    elif tp is bool and isinstance(value, bool) or tp is int and _is_int(value):
        return value
    elif tp is float and isinstance(value, float) and math.isnan(value):
        raise ctx.error(key, f"'{_dotted(key)}' must be a number, got NaN")
    elif tp is float and (_is_int(value) or isinstance(value, float)):
        return float(value)
    elif tp is float and isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads "5e-3" (no dot) as text; everyone means the number
    elif tp is str and isinstance(value, str):
        return value
    elif tp is str and key in ctx.raw and not isinstance(value, (list, dict, type(None))):
        return ctx.raw[key]  # see the module docstring: command-line text stays text
    elif isinstance(tp, type) and issubclass(tp, PurePath) and isinstance(value, (str, PurePath)):
        return tp(value)
    elif origin in (list, tuple) and isinstance(value, (list, tuple)):  # list[X], tuple[X, ...]
        item = args[0] if args else Any
        items = [_convert(item, v, key + (str(i),), ctx) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    elif origin is dict and isinstance(value, Mapping):
        for k in value:
            if not isinstance(k, str):
                raise ctx.error(key, f"keys of '{_dotted(key)}' must be strings, got {_show(k)}")
        item = args[1] if args else Any
        return {k: _convert(item, v, key + (k,), ctx) for k, v in value.items()}
    elif not (origin in _SUPPORTED or isinstance(tp, type) and issubclass(tp, PurePath)):
        raise TypeError(f"configlib does not support the type {tp!r} of '{_dotted(key)}'")
    name = _type_name(tp)
    article = "an" if name[0] in "aeiou" else "a"
    raise ctx.error(key, f"'{_dotted(key)}' must be {article} {name}, got {_show(value)}")


def _check_choice(choices: Sequence[Any], value: Any, key: Key, ctx: _Context) -> None:
    # `True == 1` in Python; a bool must only match a bool (and an int only a non-bool).
    if not any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in choices):
        raise ctx.error(key, f"'{_dotted(key)}' must be one of {', '.join(map(str, choices))}; got {value!r}")


def _prefixed(key: Key, error: ValueError) -> ConfigError:
    return ConfigError(f"{_dotted(key)}: {error}" if key else str(error))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dotted(key: Key) -> str:
    return ".".join(key)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return f"{text if len(text) <= 60 else text[:57] + '...'} ({type(value).__name__})"


def _type_name(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return f"mapping ({tp.__name__})"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is Literal:
        return "{" + ",".join(map(str, args)) + "}"
    if origin is not None:
        return f"{origin.__name__}[{', '.join('...' if a is ... else _type_name(a) for a in args)}]"
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return "path"
    return getattr(tp, "__name__", str(tp))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _default(f: dataclasses.Field, base: Any) -> Any:
    """The default of field `f`, from the enclosing default instance `base` if there is one."""
    if base is not None:
        return getattr(base, f.name)
    return f.default if f.default_factory is MISSING else f.default_factory()


def _describe(cls: type, key: Key, defaults: Any, rows: list[tuple[str, str, str, str]]) -> None:
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = _default(f, defaults)
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            sub_defaults = default if dataclasses.is_dataclass(default) else None
            _describe(tp, key + (f.name,), sub_defaults, rows)
            continue
        choices = f.metadata.get("choices")
        type_name = _type_name(tp if choices is None else Literal[tuple(choices)])
        shown = "(required)" if default is MISSING else repr(_plain(default))
        rows.append((_dotted(key + (f.name,)), type_name, shown, f.metadata.get("help", "")))
