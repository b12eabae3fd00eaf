"""Settings read into dataclasses: every key known, every value of its field's type.

`parse(cls, mapping)` builds the dataclass `cls` from a mapping as YAML reads
it. A key that is not a field, a value of the wrong type or a missing required
field is a SettingsError, one line that names the key path:

    stages[1].steps: expected an integer, got 'ten'
    optim.lrr: unknown key (known: lr, weight_decay, betas, ...)

Field types may be bool, int, float (an int is taken), str, Any, X | None,
Literal[...], list[X], tuple[X, ...], dict[str, X] and dataclasses. Two kinds
of field hold a mapping of names checked against something else:
`overrides(cls)`, some fields of the dataclass `cls` to update one with, and
`keywords(f)`, keyword arguments of the callable `f`.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from typing import Any, Callable, Literal, Mapping, TypeVar, Union, get_args, get_origin, get_type_hints

from ..errors import GencodecError

T = TypeVar("T")


class SettingsError(GencodecError):
    """A setting that does not fit its field; `path` names its key, e.g. stages[1].steps."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def overrides(of: type) -> Any:
    """A field holding some fields of the dataclass `of`, each checked as there (default: none)."""
    return dataclasses.field(default_factory=dict, metadata={"overrides": of})


def keywords(of: Callable, required: bool = False) -> Any:
    """A field holding keyword arguments of `of`: their names are checked against its signature."""
    default = {} if required else {"default_factory": dict}
    return dataclasses.field(**default, metadata={"keywords": of})


def parse(cls: type[T], value: Any, path: str = "") -> T:
    """The dataclass `cls` built from the mapping `value`, every key and value checked."""
    _expect(isinstance(value, Mapping), value, "a mapping", path)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    _known_keys(value, fields, path)
    hints = get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name in value:
            kwargs[name] = _parse_field(f, hints[name], value[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SettingsError(key, "required, but not given")
    return cls(**kwargs)


def parse_value(tp: Any, value: Any, path: str) -> Any:
    """`value` checked against the type `tp` (and converted: lists to tuples, ints to floats)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, path)
    if origin in (Union, types.UnionType):
        return _parse_union(args, value, path)
    if origin is Literal:
        _expect(any(value == a and type(value) is type(a) for a in args), value, describe(tp), path)
        return value
    if tp in (list, tuple) or origin in (list, tuple):
        return _parse_sequence(tp, value, path)
    if tp is dict or origin is dict:
        _expect(isinstance(value, Mapping), value, "a mapping", path)
        item = args[1] if args else Any
        return {k: parse_value(item, v, _join(path, str(k))) for k, v in value.items()}
    if tp in (bool, int, str):
        _expect(isinstance(value, tp) and (tp is bool or not isinstance(value, bool)), value, describe(tp), path)
        return value
    if tp is float:
        if isinstance(value, str) and _is_number(value):
            raise SettingsError(path, f"expected a number, got {show(value)} (YAML reads a number without a "
                                      "decimal point before its exponent as text: write e.g. 1.0e-4)")
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), value, describe(tp), path)
        return float(value)
    raise TypeError(f"{path}: no rule for fields of type {tp!r}")


def describe(tp: Any) -> str:
    """What a value of type `tp` is, for messages: 'an integer', 'one of noise, ste'."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if dataclasses.is_dataclass(tp) or tp is dict or origin is dict:
        return "a mapping"
    if tp in (list, tuple) or origin in (list, tuple):
        return "a list"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def show(value: Any) -> str:
    """A value as a config would spell it, kept short enough for one line."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_field(f: dataclasses.Field, tp: Any, value: Any, path: str) -> Any:
    if "overrides" in f.metadata:
        of = f.metadata["overrides"]
        _expect(isinstance(value, Mapping), value, "a mapping", path)
        fields = {g.name: g for g in dataclasses.fields(of) if g.init}
        _known_keys(value, fields, path)
        hints = get_type_hints(of)
        return {k: _parse_field(fields[k], hints[k], v, _join(path, k)) for k, v in value.items()}
    if "keywords" in f.metadata:
        return _parse_keywords(f.metadata["keywords"], value, path)
    return parse_value(tp, value, path)


def check_keywords(of: Callable, value: Any, path: str) -> dict:
    """`value` as keyword arguments of `of` (see `keywords`); a SettingsError on a name or type it does not take."""
    return _parse_keywords(of, value, path)


def _parse_keywords(of: Callable, value: Any, path: str) -> dict:
    """Keyword arguments of `of`: names it takes, values of the types it annotates (kept as given)."""
    _expect(isinstance(value, Mapping), value, "a mapping", path)
    try:
        params = inspect.signature(of, eval_str=True).parameters
    except Exception:  # annotations that do not evaluate here: check the names only
        params = inspect.signature(of).parameters
    named = {n: p for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):  # with **kwargs any name goes
        _known_keys(value, named, path)
    for key, item in value.items():
        annotation = named[key].annotation if key in named else inspect.Parameter.empty
        if annotation is not inspect.Parameter.empty and not isinstance(annotation, str):
            try:
                parse_value(annotation, item, _join(path, str(key)))
            except TypeError:  # a type with no rule here: not checked
                pass
    return dict(value)


def _parse_union(args: tuple, value: Any, path: str) -> Any:
    if value is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:
        return parse_value(options[0], value, path)
    for option in options:
        try:
            return parse_value(option, value, path)
        except SettingsError:
            pass
    raise SettingsError(path, f"expected {describe(Union[args])}, got {show(value)}")


def _parse_sequence(tp: Any, value: Any, path: str) -> list | tuple:
    _expect(isinstance(value, (list, tuple)), value, "a list", path)
    origin, args = get_origin(tp) or tp, get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise SettingsError(path, f"expected a list of {len(args)}, got {show(value)}")
        return tuple(parse_value(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    item = args[0] if args else Any
    items = [parse_value(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _known_keys(value: Mapping, known: Mapping, path: str) -> None:
    for key in value:
        if key not in known:
            raise SettingsError(_join(path, str(key)), f"unknown key (known: {', '.join(known)})")


def _expect(ok: bool, value: Any, what: str, path: str) -> None:
    if not ok:
        raise SettingsError(path, f"expected {what}, got {show(value)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
