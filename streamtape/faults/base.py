"""What a fault is, and the registry that spec strings, chaos pools and ``faults=[...]`` read.

A fault is a frozen, keyword-only dataclass with a ``name`` and a ``__call__(plan, context) -> Plan``.
Defining a subclass with a ``name`` registers it (``Fault.__init_subclass__``), so the catalogue is
never a second list to keep in step; a plain function over the plan becomes one with ``register``.
Parameters are checked before the dataclass sees them, so a user's fault gets the same one-sentence
``ConfigError`` for a wrong name or type as the built-in ones.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar, overload

from ..errors import ConfigError
from ..providers import Provider, fallback
from ._plan import Plan

__all__ = ["CATALOGUE", "CONTENT", "CUT", "Context", "Fault", "FunctionFault", "PHASES", "RECHUNK", "REPLACE",
           "TIMING", "check_params", "register", "unregister"]  # fmt: skip

#: The phases faults run in, whatever order they were listed in: replacements of the whole response,
#: then edits of its content, then cuts, then timing, then rechunking.
REPLACE, CONTENT, CUT, TIMING, RECHUNK = range(5)
PHASES = {"replace": REPLACE, "content": CONTENT, "cut": CUT, "timing": TIMING, "rechunk": RECHUNK}

#: Every registered fault by name, in registration order (the built-ins first): what spec strings and
#: chaos pools look names up in. Filled by ``Fault.__init_subclass__`` and ``register``.
CATALOGUE: dict[str, type[Fault]] = {}
_REPLACED: dict[str, list[type[Fault]]] = {}  # name -> what a replace=True registration displaced
_RESERVED = ("ok", "none", "clean", "chaos", "scenario")  # words the spec grammar gives a meaning


@dataclass(frozen=True)
class Context:
    """What a fault may know about the request it shapes."""

    number: int = 1  # the request's number on this tape, for request ids
    seed: int = 0
    #: the API's wire formats (error bodies, in-stream errors, keep-alives), chosen per request
    provider: Provider = field(default_factory=fallback)


class _FaultType(type):
    """Checks a fault's parameters before the dataclass sees them, so ``faults.disconnect(aftr=3)``
    and ``"disconnect:aftr=3"`` get the same one-sentence ``ConfigError`` listing the valid names
    (not a bare ``TypeError``), and a value of the wrong type names the parameter and its type."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        name = getattr(cls, "name", "") or cls.__name__
        if args:
            raise ConfigError(f"{name} takes keyword parameters only ({_valid(cls)}); got {len(args)} positional")
        check_params(cls, kwargs)
        return super().__call__(**kwargs)


def _valid(cls: type) -> str:
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    return "valid: " + ", ".join(names) if names else "it takes no parameters"


def check_params(cls: type, kwargs: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for a parameter ``cls`` does not have, a required one missing, or a
    value of the wrong type."""
    name = getattr(cls, "name", "") or cls.__name__
    known = fields(cls)  # type: ignore[arg-type]
    names = {f.name for f in known}
    for key in kwargs:
        if key not in names:
            raise ConfigError(f"{name} has no parameter {key!r}; {_valid(cls)}")
    missing = [f.name for f in known if f.default is MISSING and f.default_factory is MISSING and f.name not in kwargs]
    if missing:
        raise ConfigError(f"{name} needs {', '.join(f'{m}=' for m in missing)}; {_valid(cls)}")
    hints = _hints(cls)
    for key, value in kwargs.items():
        expected = _kinds(hints.get(key, Any))
        if expected is not None and not _is(value, expected):
            wanted = " or ".join("none" if k is type(None) else k.__name__ for k in expected)
            raise ConfigError(f"{name}: {key}={value!r} is not valid; expected {wanted}")


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a class defined in a function, naming its locals: check what resolves
        return {f.name: f.type for f in fields(cls) if not isinstance(f.type, str)}  # type: ignore[arg-type]


def _kinds(hint: Any) -> tuple[type, ...] | None:
    """The classes a value must be one of, or ``None`` when the hint is not a plain class or a union
    of them (``list[int]``, ``Literal[...]``: not checked here)."""
    if hint is Any:
        return None
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = typing.get_args(hint)
        return kinds if all(_plain(k) for k in kinds) else None
    return (hint,) if _plain(hint) else None


def _plain(hint: Any) -> bool:
    return isinstance(hint, type) and typing.get_origin(hint) is None


def _is(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


@dataclass(frozen=True, kw_only=True)
class Fault(metaclass=_FaultType):
    """A change to what one request meets on the wire.

    A fault of your own: subclass it as a frozen, keyword-only dataclass with a ``name`` and a
    ``__call__(plan, context) -> plan``; defining it registers it, for spec strings and chaos pools::

        @dataclass(frozen=True, kw_only=True)
        class SlowStart(faults.Fault):
            name: ClassVar[str] = "slow_start"
            seconds: float = 1.0

            def __call__(self, plan, context):
                plan.shift(0, self.seconds)
                return plan

    A name already registered is refused unless the class says ``replace=True``
    (``class Mine(faults.Fault, replace=True)``); ``faults.unregister(name)`` forgets it again.
    """

    name: ClassVar[str] = ""
    #: the providers (``streamtape.providers`` names) whose streams alone this fault belongs to, as
    #: ``done_early`` to OpenAI Chat Completions'; empty: every provider's (the fidelity tables and
    #: the catalogue's coverage checks list it under those providers only)
    providers: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, /, replace: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")  # only a class that names itself: a subclass inherits no entry
        if name:
            _add(cls, name, replace=replace)
        elif replace:
            raise ConfigError(f"fault class {cls.__qualname__}: replace=True, but it has no name to register")

    @property
    def phase(self) -> int:
        return CONTENT

    def __call__(self, plan: Plan, context: Context) -> Plan:
        raise NotImplementedError

    def spec(self) -> str:
        """The string form, e.g. ``disconnect:after=5``."""
        params = [
            f"{f.name}={_show(getattr(self, f.name))}" for f in fields(self) if getattr(self, f.name) != f.default
        ]
        return self.name + (":" + ",".join(params) if params else "")

    def __str__(self) -> str:
        return self.spec()


def _show(value: Any) -> str:
    """A parameter's value as a spec string writes it, quoted where it would not read back as itself
    (``streamtape.faults.spec``): a string holding a separator, a quote, or looking like a number; a
    value that is not a string, number or bool (a tuple of headers, say) as JSON in quotes."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        try:
            value = json.dumps(value, separators=(",", ":"))
        except (TypeError, ValueError):
            return str(value)
        return _quoted(value)
    return _quoted(value) if _needs_quotes(value) else value


_SEPARATORS = (",", "+", "->", "*", "'", '"')


def _needs_quotes(text: str) -> bool:
    if not text or text != text.strip() or any(mark in text for mark in _SEPARATORS):
        return True
    if text.lower() in ("true", "false", "none", "null", "forever"):
        return True
    try:
        float(text)  # int() reads nothing float() does not
    except ValueError:
        return False
    return True


def _quoted(text: str) -> str:
    """``text`` in the quote it does not hold (single if it holds both, doubled inside)."""
    quote = "'" if "'" not in text or '"' in text else '"'
    return quote + text.replace(quote, quote * 2) + quote


def _add(cls: type[Fault], name: Any, *, replace: bool) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ConfigError(f"fault class {cls.__qualname__}: name={name!r} must be a word (letters, digits, _), "
                          "as it is written in spec strings")  # fmt: skip
    if name.lower() in _RESERVED or name.lower().startswith(("chaos", "scenario")):
        raise ConfigError(f"fault class {cls.__qualname__}: name={name!r} is taken by the spec grammar "
                          f"({', '.join(_RESERVED)})")  # fmt: skip
    taken = CATALOGUE.get(name)
    if taken is not None and not replace and not _same(taken, cls):
        raise ConfigError(
            f"fault {name!r} is already registered ({taken.__module__}.{taken.__qualname__}); choose another "
            "name, or replace it on purpose (class X(Fault, replace=True), or register(..., replace=True))"
        )
    if taken is not None and replace:
        _REPLACED.setdefault(name, []).append(taken)
    CATALOGUE[name] = cls


def _same(a: type, b: type) -> bool:
    """The same definition run again (a module re-imported, a docs example run twice): it replaces itself."""
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def unregister(name: str) -> None:
    """Forget the fault ``name``; if it had replaced another, that one is back."""
    if name not in CATALOGUE:
        raise ConfigError(f"faults: no fault {name!r} is registered; registered: {', '.join(CATALOGUE)}")
    displaced = _REPLACED.get(name)
    if displaced:
        CATALOGUE[name] = displaced.pop()  # in its old place: error messages list names in order
    else:
        del CATALOGUE[name]


# --- a plain function over the plan ---------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True)
class FunctionFault(Fault):
    """A fault made from a plain function (see ``register``): its keyword parameters are the fields."""

    function: ClassVar[Callable[..., Plan | None]]
    function_phase: ClassVar[int] = CONTENT

    @property
    def phase(self) -> int:
        return self.function_phase

    def __call__(self, plan: Plan, context: Context) -> Plan:
        result = type(self).function(plan, context, **{f.name: getattr(self, f.name) for f in fields(self)})
        if result is None:
            return plan  # edited in place
        if not isinstance(result, Plan):
            raise ConfigError(f"fault {self.name!r} returned {type(result).__name__}, not the Plan it was given")
        return result


@overload
def register(function: F, /, *, name: str | None = ..., phase: int | str = ..., replace: bool = ...) -> type[Fault]: ...


@overload
def register(
    function: str | None = ..., /, *, name: str | None = ..., phase: int | str = ..., replace: bool = ...
) -> Callable[[F], type[Fault]]: ...


def register(
    function: Any = None, /, *, name: str | None = None, phase: int | str = CONTENT, replace: bool = False
) -> Any:
    """Register a plain function over the plan as a fault, usable in spec strings, ``faults=[...]``
    and chaos pools::

        @faults.register("slow_start")
        def slow_start(plan, context, *, seconds: float = 1.0):
            plan.shift(0, seconds)   # everything after the headers arrives later
            return plan

        use_cassette("story.yaml", faults="slow_start:seconds=2")
        use_cassette("story.yaml", faults=[slow_start(seconds=2)])

    The keyword parameters after ``plan`` and ``context`` are the fault's parameters (their
    annotations are checked as the built-ins' are; one without a default must be given). ``phase``
    says when it runs among the others (``"replace"``, ``"content"`` (default), ``"cut"``,
    ``"timing"``, ``"rechunk"``). Returns the fault's class: call it with the parameters to get a fault.
    Also as ``faults.register(fn, name=...)``; the name defaults to the function's."""
    if isinstance(function, str):
        if name is not None:
            raise ConfigError(f"faults.register: a name twice ({function!r} and name={name!r})")
        return lambda fn: register(fn, name=function, phase=phase, replace=replace)
    if function is None:
        return lambda fn: register(fn, name=name, phase=phase, replace=replace)
    if isinstance(function, type):
        raise ConfigError(f"faults.register: {function.__qualname__} is a class; a Fault subclass with a name "
                          "registers itself when it is defined")  # fmt: skip
    if not callable(function):
        raise ConfigError(f"faults.register: {function!r} is not a function")
    return _fault_class(function, name or function.__name__, _phase(phase), replace)


def _phase(phase: int | str) -> int:
    if isinstance(phase, str) and phase in PHASES:
        return PHASES[phase]
    if isinstance(phase, int) and not isinstance(phase, bool) and phase in PHASES.values():
        return phase
    raise ConfigError(f"faults.register: phase={phase!r}; valid: {', '.join(PHASES)}")


def _fault_class(function: Callable[..., Any], name: str, phase: int, replace: bool) -> type[Fault]:
    where = f"faults.register({getattr(function, '__qualname__', function)!r})"
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: its signature cannot be read") from None
    params = list(signature.parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) < 2 or any(p.kind not in positional for p in params[:2]):
        raise ConfigError(f"{where}: it must take (plan, context, *, your_parameter=default, ...)")
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve is not checked
        hints = {}
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for param in params[2:]:
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ConfigError(f"{where}: *{param.name} cannot be a spec parameter; name each parameter")
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ConfigError(f"{where}: {param.name} is positional-only; parameters are given by name")
        if param.name in ("name", "phase", "spec", "function", "function_phase"):
            raise ConfigError(f"{where}: a parameter cannot be called {param.name!r}")
        annotations[param.name] = hints.get(param.name, Any)
        if param.default is not inspect.Parameter.empty:
            namespace[param.name] = param.default
    namespace.update(
        __annotations__=annotations,
        __module__=getattr(function, "__module__", __name__),
        __qualname__=getattr(function, "__qualname__", name),
        __doc__=function.__doc__ or f"The fault {name!r}, made from a function.",
        name=name,
        function=staticmethod(function),
        function_phase=phase,
    )
    cls = typing.cast("type[Fault]", _FaultType(_class_name(name), (FunctionFault,), namespace, replace=replace))
    try:
        return dataclass(frozen=True, kw_only=True)(cls)
    except (TypeError, ValueError) as exc:  # a list as a default, say
        unregister(name)
        raise ConfigError(f"{where}: {exc}") from None


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) or "Fault"
