"""User code checked against its declaration, without running any of it.

The module is imported as the platform does (:func:`.loader.load_module`); after
that nothing of the user's is called: no class is instantiated, no method or
property is run. Classes and methods are looked up in the classes'
``__dict__`` (:func:`_lookup`), and :func:`inspect.signature` tells whether
each method accepts the arguments its runner passes (:mod:`.calltable`): the
count of positional parameters (``*args``, defaults and keyword-only
parameters honoured) and, where the runner relies on a name
(``loop_channel``, the view's ``start_index``/``end_index`` keywords), the
name.

Each problem is one message ``<file>:<line>: <what was found>, <what was
expected>`` (``<file>: ...`` when there is no line: a missing class), naming
the file and line of the method, or of the class when a method is missing.
Valid code is never flagged: a method inherited from a base class, wrapped by
a decorator (``functools.wraps`` keeps the signature), taking ``*args``, or
which the object may get some other way (``__getattr__``, an assignment
``self.<name> = ...`` in the class) is accepted; so is anything that cannot be
inspected without running user code (a descriptor of its own, a factory
function instead of a class).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import os
import signal
import sys
import threading
import types
from collections.abc import Iterator
from contextvars import ContextVar

from .calltable import LOOP_CHANNEL, PUSH_VIEW_METHODS, VIEW_CALLS, Call, algorithm_calls, label

__all__ = [
    "algorithm_errors",
    "guarded",
    "defined_classes",
    "missing_class",
    "missing_method",
    "missing_view",
    "view_errors",
    "views_by_class",
]

#: whether a push-style view (``setup``/``next``/``done``, the legacy view interface) is
#: accepted: by ``beat-backend check`` (it is valid code for its declaration), not by
#: ``run``'s checks (:mod:`beat_backend._execution.preflight` sets it to ``False``): the
#: view runner of the databases provider needs ``index`` and ``get``; only
#: ``DatabaseTester`` runs push-style views
push_views_accepted: ContextVar[bool] = ContextVar("push_views_accepted", default=True)

_P = inspect.Parameter
_POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
_ORDINALS = ("first", "second", "third", "fourth", "fifth")

#: attribute types whose binding (``__get__``) is the standard library's: safe to call
_BINDABLE = {
    types.FunctionType,
    staticmethod,
    classmethod,
    functools.partialmethod,
    functools.singledispatchmethod,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
}
if hasattr(functools, "_lru_cache_wrapper"):
    _BINDABLE.add(functools._lru_cache_wrapper)
#: stands for the instance when a method is bound for its signature
_INSTANCE = object()
#: "cannot tell without running user code"
_UNKNOWN = object()


# --------------------------------------------------------------------------
# Importing in a process that goes on


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Import user code in a process that goes on (``beat-backend run``, ``check``)
    without its module level changing what that process relies on: what it prints
    goes to stderr (stdout may carry a ``--json`` document), and the environment (the
    scripts inherit it), the working directory, ``sys.path`` and the SIGINT/SIGTERM
    handlers are put back as they were."""
    environ, path, cwd = dict(os.environ), list(sys.path), os.getcwd()
    main = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if os.environ != environ:
            os.environ.clear()
            os.environ.update(environ)
        sys.path[:] = path
        with contextlib.suppress(OSError):
            os.chdir(cwd)
        for signum, handler in handlers.items():
            if handler is not None and signal.getsignal(signum) is not handler:
                signal.signal(signum, handler)


# --------------------------------------------------------------------------
# Messages


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def missing_class(path: str, wanted: str, found: list[str], needed_by: str) -> str:
    """``<path>: no class <wanted> (found: A, B), <needed_by>``."""
    return f"{path}: no class {wanted} (found: {', '.join(found) or 'none'}), {needed_by}"


def missing_method(
    where: str, owner: str, calls: list[Call], found: list[str], expected: str
) -> str:
    """``<where>: <owner> has no method <m> (found: a, b), <expected> needs <m>(<args>)``;
    several missing methods of one class make one message (``no methods m1, m2``)."""
    names = ", ".join(c.method for c in calls)
    needs = " and ".join(c.shown() for c in calls)
    word = "method" if len(calls) == 1 else "methods"
    return (
        f"{where}: {owner} has no {word} {names} (found: {', '.join(found) or 'none'}), "
        f"{expected} needs {needs}"
    )


def _called(expected: str, call: Call) -> str:
    return f"{expected}'s {call.method} is called with {call.called_with()}"


def defined_classes(module: types.ModuleType) -> list[str]:
    """The classes ``module`` defines (bound under their own name), sorted."""
    name = module.__name__
    return sorted(
        key
        for key, value in vars(module).items()
        if isinstance(value, type) and value.__module__ == name and value.__name__ == key
    )


# --------------------------------------------------------------------------
# Where things are


class _Sources:
    """Parsed source files (read once per check) and the files of classes.

    ``path`` is the file of ``module`` as it was given to the loader: it, and the
    code objects' file names, name files the way the other messages do.
    """

    def __init__(self, module: types.ModuleType, path: str):
        self.module = module
        self.path = path
        self.trees: dict[str, ast.Module | None] = {}

    def tree(self, path: str | None) -> ast.Module | None:
        if path is None:
            return None
        if path not in self.trees:
            try:
                with open(path, "rb") as f:
                    self.trees[path] = ast.parse(f.read(), filename=path)
            except (OSError, SyntaxError, ValueError):
                self.trees[path] = None
        return self.trees[path]

    def class_file(self, cls: type) -> str | None:
        for value in vars(cls).values():  # the file its methods were compiled from
            function = _function_of(value)
            if function is not None and not function.__code__.co_filename.startswith("<"):
                return function.__code__.co_filename
        name = getattr(cls, "__module__", None)
        if name == self.module.__name__:
            return self.path
        for module in vars(self.module).values():  # e.g. a library bound by ``uses``
            if _is_module(module) and module.__name__ == name:
                return getattr(module, "__file__", None)
        return getattr(inspect.getmodule(cls), "__file__", None)

    def class_node(self, cls: type) -> ast.ClassDef | None:
        tree = self.tree(self.class_file(cls))
        if tree is None:
            return None
        parts = cls.__qualname__.split(".")
        if "<locals>" not in parts:
            body: list = tree.body
            node = None
            for part in parts:  # the last definition of a name is the one bound
                node = next((n for n in reversed(_defs(body)) if n.name == part), None)
                if node is None:
                    break
                body = node.body
            if isinstance(node, ast.ClassDef):
                return node
        return next(
            (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__),
            None,
        )

    def class_where(self, cls: type) -> str:
        path = self.class_file(cls) or self.path
        node = self.class_node(cls)
        return f"{path}:{node.lineno}" if node is not None else path


def _is_module(value) -> bool:
    return isinstance(value, types.ModuleType)


def _defs(body: list) -> list:
    """The class and function definitions directly in ``body`` (``if``/``try`` included)."""
    found = []
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append(node)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody"):
                found += _defs(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                found += _defs(handler.body)
    return found


def _function_of(value) -> types.FunctionType | None:
    """The Python function behind a class attribute (unwrapped), if there is one."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    elif isinstance(value, functools.partialmethod):
        value = value.func
    if not isinstance(value, types.FunctionType):
        return None
    try:
        value = inspect.unwrap(value)
    except ValueError:
        return None
    return value if isinstance(value, types.FunctionType) else None


def _where(value, owner: type, sources: _Sources) -> str:
    """``<file>:<line>`` of a method, or of its class (no file: e.g. a dataclass's ``__init__``)."""
    function = _function_of(value)
    if function is None or function.__code__.co_filename.startswith("<"):
        return sources.class_where(owner)
    return f"{function.__code__.co_filename}:{function.__code__.co_firstlineno}"


# --------------------------------------------------------------------------
# Looking up without running


def _mro(cls: type) -> tuple[type, ...]:
    return tuple(k for k in cls.__mro__ if k is not object)


def _lookup(cls: type, name: str) -> tuple[type, object] | None:
    """``(owner, raw attribute)`` of ``name`` as an instance of ``cls`` finds it."""
    for klass in _mro(cls):
        if name in vars(klass):
            return klass, vars(klass)[name]
    return None


#: ``type.__flags__`` bit of the classes made by a ``class`` statement (not builtin types)
_HEAPTYPE = 1 << 9


def _methods(cls: type, skip: tuple[type, ...] = ()) -> list[str]:
    """The names of the methods of ``cls`` and its Python bases (no dunders, nothing of a
    builtin or extension type such as ``numpy.ndarray``), in definition order."""
    names: list[str] = []
    for klass in _mro(cls):
        if klass in skip or not klass.__flags__ & _HEAPTYPE:
            continue
        for name, value in vars(klass).items():
            method = callable(value) or isinstance(value, (staticmethod, classmethod))
            if method and not name.startswith("__") and name not in names:
                names.append(name)
    return names


def _may_have(cls: type, name: str, sources: _Sources) -> bool:
    """Whether an instance may get ``name`` some other way than from its class: a
    ``__getattr__``/``__getattribute__``, or ``.<name> = ...``/``setattr`` in the class."""
    for klass in _mro(cls):
        if "__getattr__" in vars(klass) or "__getattribute__" in vars(klass):
            return True
        node = sources.class_node(klass)
        if node is None:
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and sub.attr == name:
                if isinstance(sub.ctx, ast.Store):
                    return True
            elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name):
                if sub.func.id in ("setattr", "vars"):
                    return True
            elif isinstance(sub, ast.Attribute) and sub.attr == "__dict__":
                return True
    return False


def _bound(raw, cls: type):
    """What an instance calls for attribute ``raw`` (``_UNKNOWN``: cannot tell safely)."""
    kind = type(raw)
    if kind in _BINDABLE:
        try:
            return raw.__get__(_INSTANCE, cls)
        except Exception:  # e.g. a method descriptor of another type
            return _UNKNOWN
    if hasattr(kind, "__get__"):  # property, a descriptor of its own: runs user code
        return _UNKNOWN
    return raw if callable(raw) else None


def _after(raw) -> str:
    """How a message counts the arguments: `` after self`` for a method."""
    if isinstance(raw, staticmethod) or type(raw) not in _BINDABLE:
        return ""
    return " after cls" if isinstance(raw, classmethod) else " after self"


# --------------------------------------------------------------------------
# Signatures against calls


def _names(params) -> str:
    return ", ".join(p.name for p in params)


def _arity(sig: inspect.Signature, call: Call, after: str) -> str | None:
    """What keeps ``sig`` from accepting ``call`` (``None``: it accepts it)."""
    try:
        sig.bind(*call.args, **dict.fromkeys(call.keywords))
        return None
    except TypeError:
        pass
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in _POSITIONAL]
    variadic = any(p.kind is _P.VAR_POSITIONAL for p in params)
    if not variadic and len(positional) < len(call.args):
        count = _plural(len(positional), "positional argument") if positional else ""
        shown = f" ({_names(positional)})" if positional else ""
        return f"takes {count or 'no positional argument'}{after}{shown}"
    required = [p for p in positional if p.default is _P.empty and p.name not in call.keywords]
    if len(required) > len(call.args):
        return f"needs {_plural(len(required), 'positional argument')}{after} ({_names(required)})"
    keyword_only = [
        p
        for p in params
        if p.kind is _P.KEYWORD_ONLY and p.default is _P.empty and p.name not in call.keywords
    ]
    if keyword_only:
        words = "argument" if len(keyword_only) == 1 else "arguments"
        return f"needs the keyword-only {words} {_names(keyword_only)}"
    accepts_any = any(p.kind is _P.VAR_KEYWORD for p in params)
    for keyword in call.keywords:
        param = sig.parameters.get(keyword)
        if param is None and not accepts_any:
            return f"has no parameter {keyword}"
        if param is not None and param.kind is _P.POSITIONAL_ONLY:
            return f"takes {keyword} by position only"
        if param in positional[: len(call.args)]:
            return f"takes {keyword} by position, before the keywords"
    return "does not accept these arguments"


def _loop_name(sig: inspect.Signature, rule: str) -> str | None:
    """``loop_channel`` present where the runner needs it (``required``), absent where
    the runner refuses it (``forbidden``: sequential and autonomous, not legacy)."""
    param = sig.parameters.get(LOOP_CHANNEL)
    if rule == "forbidden" and param is not None:
        return f"has a parameter {LOOP_CHANNEL} (only a loop processor's process has one)"
    if rule == "required" and param is None:
        return f"has no parameter {LOOP_CHANNEL}"
    return None


def _loop_place(sig: inspect.Signature, call: Call, rule: str, after: str) -> str | None:
    """The runner passes the loop channel by position, last: where ``loop_channel`` is."""
    param = sig.parameters.get(LOOP_CHANNEL)
    if rule != "required" or param is None:
        return None
    if param.kind is _P.KEYWORD_ONLY:
        return f"takes {LOOP_CHANNEL} as a keyword-only argument"
    positional = [p for p in sig.parameters.values() if p.kind in _POSITIONAL]
    index = positional.index(param) if param in positional else -1
    if 0 <= index != len(call.args) - 1:
        ordinal = _ORDINALS[index] if index < len(_ORDINALS) else f"number {index + 1}"
        return f"takes {LOOP_CHANNEL} as its {ordinal} argument{after}"
    return None


def _absent(cls: type, method: str) -> bool:
    """Whether instances of ``cls`` lack ``method`` (``View``'s abstract index/get count)."""
    found = _lookup(cls, method)
    return found is None or found[0] is _view_base() and method in ("index", "get")


def _class_errors(
    cls: type, owner: str, calls, expected: str, sources: _Sources, rules: dict
) -> list[str]:
    """Problems of the methods of ``cls`` for ``calls``: one for the missing ones, one
    per method that does not accept its call. ``rules``: method -> loop_channel rule."""
    missing, errors = [], []
    for call in calls:
        if _absent(cls, call.method):
            if call.required and not _may_have(cls, call.method, sources):
                missing.append(call)
            continue
        error = _method_error(cls, owner, call, expected, sources, rules.get(call.method, ""))
        if error:
            errors.append(error)
    if missing:
        found = _methods(cls, (_view_base(),))
        where = sources.class_where(cls)
        errors.insert(0, missing_method(where, owner, missing, found, expected))
    return errors


def _method_error(
    cls: type, owner: str, call: Call, expected: str, sources: _Sources, loop: str
) -> str | None:
    klass, raw = _lookup(cls, call.method)
    target = _bound(raw, cls)
    if target is _UNKNOWN:
        return None
    problem = _signature_problem(raw, target, call, loop)
    if problem is None or _may_have(cls, call.method, sources):
        return None
    where = _where(raw, klass, sources)
    return f"{where}: {owner}.{call.method} {problem}, {_called(expected, call)}"


def _signature_problem(raw, target, call: Call, loop: str) -> str | None:
    """What is wrong with the method ``target`` (``raw`` in the class) for ``call``."""
    if target is None:
        return f"is not a method (found: {type(raw).__name__})"
    try:
        sig = inspect.signature(target)
    except ValueError:  # a function without even ``self``
        return "takes no argument, not even self" if type(raw) is types.FunctionType else None
    except TypeError:
        return None
    after = _after(raw)
    return _loop_name(sig, loop) or _arity(sig, call, after) or _loop_place(sig, call, loop, after)


def _constructor_error(cls: type, owner: str, who: str, sources: _Sources) -> str | None:
    """``<Owner>() needs ...`` when the class cannot be created without arguments."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):  # not inspectable (e.g. a subclass of a builtin type)
        return None
    try:
        sig.bind()
        return None
    except TypeError:
        pass
    needed = [
        p
        for p in sig.parameters.values()
        if p.default is _P.empty and p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)
    ]
    found = _lookup(cls, "__init__")
    where = _where(found[1], found[0], sources) if found else sources.class_where(cls)
    return (
        f"{where}: {owner}() needs {_plural(len(needed), 'argument')} ({_names(needed)}), "
        f"{who} creates it with none"
    )


def _view_base() -> type:
    from .database import View

    return View


# --------------------------------------------------------------------------
# The checks


def algorithm_errors(module: types.ModuleType, algorithm) -> list[str]:
    """The problems of the ``Algorithm`` class of ``module`` (the loaded code of
    ``algorithm``) against ``algorithm``'s type and API version."""
    path = algorithm.storage.code.path
    cls = vars(module).get("Algorithm")
    if cls is None:
        needed_by = f"which algorithm `{algorithm.name}' needs"
        return [missing_class(path, "Algorithm", defined_classes(module), needed_by)]
    if not isinstance(cls, type):
        if callable(cls):  # e.g. a factory function: cannot tell without calling it
            return []
        return [f"{path}: Algorithm is not a class (found: {type(cls).__name__})"]
    sources = _Sources(module, path)
    errors = []
    constructor = _constructor_error(cls, "Algorithm", "the runner", sources)
    if constructor:
        errors.append(constructor)
    algorithm_type = algorithm.type
    analyzer = bool(algorithm.isAnalyzer)
    if algorithm_type.endswith("_loop_processor"):
        rules = {"process": "required"}
    elif algorithm_type in ("sequential", "autonomous"):
        rules = {"process": "forbidden"}
    else:
        rules = {}
    calls = algorithm_calls(algorithm_type, algorithm.api_version, analyzer)
    expected = label(algorithm_type, analyzer)
    return errors + _class_errors(cls, "Algorithm", calls, expected, sources, rules)


def views_by_class(views) -> dict[str, list[str]]:
    """``class name -> ["<protocol>/<set>", ...]`` for ``(protocol, set, class name)``."""
    wanted: dict[str, list[str]] = {}
    for protocol, set_name, view in views:
        key = view if isinstance(view, str) else repr(view)
        wanted.setdefault(key, []).append(f"{protocol}/{set_name}")
    return wanted


def missing_view(path: str, name: str, found: list[str], database: str, sets: list[str]) -> str:
    """``<path>: no class <name> (found: ...), which database `<db>' names as the view of ...``."""
    listed = ("set " if len(sets) == 1 else "sets ") + ", ".join(sets)
    needed_by = f"which database `{database}' names as the view of {listed}"
    return missing_class(path, name, found, needed_by)


def view_errors(module: types.ModuleType, path: str, database: str, views) -> list[str]:
    """The problems of the view classes of ``module`` (the code of database ``database``,
    loaded from ``path``); ``views`` lists ``(protocol, set, class name)``."""
    sources = _Sources(module, path)
    errors = []
    for name, sets in views_by_class(views).items():
        cls = vars(module).get(name)
        if cls is None:
            errors.append(missing_view(path, name, defined_classes(module), database, sets))
        elif not isinstance(cls, type):
            if not callable(cls):  # a factory function is called as the class would be
                errors.append(f"{path}: {name} is not a class (found: {type(cls).__name__})")
        else:
            errors.extend(_view_class_errors(cls, name, sources))
    return errors


def _view_class_errors(cls: type, name: str, sources: _Sources) -> list[str]:
    base = _view_base()
    errors = []
    constructor = _constructor_error(cls, name, "the view runner", sources)
    if constructor:
        errors.append(constructor)

    pull = [m for m in ("index", "get") if _absent(cls, m) and not _may_have(cls, m, sources)]
    if pull and not any(_absent(cls, m) for m in PUSH_VIEW_METHODS):
        if push_views_accepted.get():
            return errors
        return [
            *errors,
            f"{sources.class_where(cls)}: {name} is a push-style view (found: "
            f"{', '.join(_methods(cls, (base,)))}), which only DatabaseTester runs; a view "
            "needs index(root_folder, parameters) and get(output, index)",
        ]
    return errors + _class_errors(cls, name, VIEW_CALLS, "a view", sources, {})
