"""CONTRIBUTING.md's conventions, checked over every family's public API and source.

Each test names the convention it guards. They read signatures and syntax trees (fast, no
training), so a new topic that drifts from a convention fails here from its first commit.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import toyalgos

SRC = Path(toyalgos.__file__).parent
FAMILIES = sorted(
    p.name for p in SRC.iterdir() if (p / "__init__.py").exists() and p.name not in {"core", "nn"}
)
SHARED = {"core", "nn"}

# Functions whose whole point is the generator itself, so it comes first and positionally.
GENERATOR_HELPERS = {"check_generator", "numpy_rng"}
# Public names ending in ``_loss`` that are metrics or helpers on predictions, not a training
# loss with the ``loss(model, *batch, **options)`` contract.
NOT_TRAINING_LOSSES = {
    "log_loss",  # recsys metric: log loss of predicted probabilities against labels
    "masked_token_loss",  # lm: the per-token cross-entropy on logits that mdm_loss sums
    "yolo_loss_terms",  # detection: the five-term equation on predictions that yolo_loss wraps
}
# torch functions and tensor methods that draw random numbers; each takes ``generator=``.
RANDOM_FUNCTIONS = {"rand", "randn", "randint", "randperm", "multinomial", "bernoulli", "normal", "poisson"}
RANDOM_METHODS = {"uniform_", "normal_", "exponential_", "random_", "bernoulli_", "geometric_", "cauchy_"}
HIDDEN_RANDOM = {"rand_like", "randn_like", "randint_like"}  # no generator argument in torch
# Parameter initialisation draws from torch's global generator, as torch's own layers do.
INITIALISERS = {"__init__", "_init_weights", "reset_parameters"}


def _modules() -> Iterator[ModuleType]:
    for info in pkgutil.walk_packages(toyalgos.__path__, "toyalgos."):
        yield importlib.import_module(info.name)


MODULES = list(_modules())
SOURCES = {m.__name__: Path(m.__file__) for m in MODULES}


def _family(module_name: str) -> str:
    parts = module_name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _public_callables() -> Iterator[tuple[str, object]]:
    """Every public function, class and public method defined in the library, by qualified name."""
    for module in MODULES:
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj
            elif inspect.isclass(obj):
                yield f"{module.__name__}.{name}", obj
                for meth_name, meth in vars(obj).items():
                    if meth_name.startswith("_") and meth_name != "__init__":
                        continue
                    func = meth.__func__ if isinstance(meth, (classmethod, staticmethod)) else meth
                    if inspect.isfunction(func):
                        yield f"{module.__name__}.{name}.{meth_name}", func


PUBLIC = dict(_public_callables())
FUNCTIONS = {k: f for k, f in PUBLIC.items() if inspect.isfunction(f)}


def _trees() -> Iterator[tuple[str, ast.Module]]:
    for name, path in SOURCES.items():
        yield name, ast.parse(path.read_text(), filename=str(path))


TREES = dict(_trees())


def _call_name(node: ast.Call) -> str | None:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _functions_with_calls(tree: ast.Module) -> Iterator[tuple[ast.FunctionDef, ast.Call]]:
    """(innermost enclosing function, call) for every call in the module."""

    def visit(node: ast.AST, func: ast.FunctionDef | None) -> Iterator[tuple[ast.FunctionDef, ast.Call]]:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Call) and func is not None:
                yield func, child
            yield from visit(child, inner)

    yield from visit(tree, None)


# --- Randomness ---------------------------------------------------------------------------


def test_every_random_draw_uses_a_generator_the_caller_passed():
    """Randomness: each draw passes ``generator=``, and the enclosing function takes one."""
    problems = []
    for module, tree in TREES.items():
        for func, call in _functions_with_calls(tree):
            name = _call_name(call)
            where = f"{module}.{func.name} line {call.lineno}"
            if name in HIDDEN_RANDOM:
                problems.append(
                    f"{where}: {name} draws from the global generator; use torch.randn(..., generator=)"
                )
            is_draw = (name in RANDOM_FUNCTIONS and _is_torch_call(call)) or name in RANDOM_METHODS
            if not is_draw or (name in RANDOM_METHODS and func.name in INITIALISERS):
                continue
            if not any(k.arg == "generator" for k in call.keywords):
                problems.append(f"{where}: {name}(...) without generator=")
            args = func.args
            names = {a.arg for a in args.args + args.kwonlyargs + args.posonlyargs}
            if "generator" not in names and "self" not in names:
                problems.append(f"{where}: {func.name} draws random numbers but takes no generator")
    assert not problems, "\n".join(problems)


def _is_torch_call(call: ast.Call) -> bool:
    f = call.func
    return isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "torch"


def test_public_generators_are_keyword_only_and_optional():
    """Randomness: ``generator: torch.Generator | None = None``, keyword-only, everywhere."""
    problems = []
    for qualname, func in FUNCTIONS.items():
        p = inspect.signature(func).parameters.get("generator")
        if p is None or func.__name__ in GENERATOR_HELPERS:
            continue
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            problems.append(f"{qualname}: generator must be keyword-only")
        if p.default is not None:
            problems.append(f"{qualname}: generator must default to None")
        if str(p.annotation).replace("'", "") != "torch.Generator | None":
            problems.append(
                f"{qualname}: generator must be annotated torch.Generator | None, got {p.annotation}"
            )
    assert not problems, "\n".join(problems)


def test_functions_that_pass_a_generator_on_take_one():
    """Randomness: a public function whose body uses ``generator`` has it in its signature."""
    missing = [
        q
        for q, f in FUNCTIONS.items()
        if re.search(r"\bgenerator\b", _body(f)) and "generator" not in inspect.signature(f).parameters
    ]
    assert not missing, missing


def test_no_seed_arguments_and_no_numpy_global_rng():
    """Randomness: no ``seed=`` / ``rng=`` arguments (but ``seed_everything``), no ``np.random.*``."""
    bad = [
        q
        for q, f in FUNCTIONS.items()
        if {"seed", "rng", "random_state"} & set(inspect.signature(f).parameters)
        and f.__name__ != "seed_everything"
    ]
    assert not bad, f"take generator= instead: {bad}"
    allowed = {("toyalgos.core.rng", "default_rng"), ("toyalgos.core.seed", "seed")}
    uses = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "random"
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id in {"np", "numpy"}
                and (module, node.attr) not in allowed
                and node.attr != "Generator"  # the type, in an annotation
            ):
                uses.append(f"{module} line {node.lineno}: np.random.{node.attr}")
    assert not uses, "\n".join(uses)


def _body(func) -> str:
    """The function's code without its signature and docstring ('' when it has no source file)."""
    try:
        source = inspect.getsource(inspect.unwrap(func))
    except (OSError, TypeError):  # generated, e.g. a NamedTuple's __new__
        return ""
    node = ast.parse(textwrap.dedent(source)).body[0]
    body = node.body[1:] if ast.get_docstring(node) else node.body
    return "\n".join(ast.unparse(stmt) for stmt in body)


# --- Results ------------------------------------------------------------------------------


def _return_annotation(func) -> str:
    return str(inspect.signature(func).return_annotation).replace("'", "")


def _top_level_union(annotation: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in annotation:
        depth += ch in "[(" and 1 or ch in "])" and -1 or 0
        if ch == "|" and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [p for p in [*parts, current.strip()] if p and p != "None"]


def test_no_return_type_depends_on_a_flag():
    """Results: a function's return annotation is one type (``X | None`` at most)."""
    unions = {
        q: _return_annotation(f)
        for q, f in FUNCTIONS.items()
        if len(_top_level_union(_return_annotation(f))) > 1 and not q.endswith("__init__")
    }
    assert not unions, unions


SAMPLER_NAME = re.compile(r"_(sample|generate|infill)$")


def _first_parameter(func) -> str | None:
    return next(iter(inspect.signature(func).parameters), None)


def test_samplers_return_samples():
    """Results: a sampler (a ``*_sample`` / ``*_generate`` / ``*_infill`` function of a model, or
    anything that can keep a trajectory) returns ``Samples``, always. (``q_sample``, a draw of the
    forward process from data, is not a sampler of a model.)"""
    samplers = {
        q: f
        for q, f in FUNCTIONS.items()
        if SAMPLER_NAME.search(f.__name__)
        and _first_parameter(f) in {"model", "denoiser"}
        or "return_trajectory" in inspect.signature(f).parameters
    }
    assert len(samplers) >= 7, sorted(samplers)  # DDPM, DDIM, EDM, Euler, LLaDA x2, AR at least
    wrong = {q: _return_annotation(f) for q, f in samplers.items() if _return_annotation(f) != "Samples"}
    assert not wrong, wrong


def test_the_only_return_flag_is_return_trajectory():
    """Results: no ``return_x=True`` flag that changes what comes back; a trajectory is a field."""
    flags = [
        f"{q}({p})"
        for q, f in FUNCTIONS.items()
        for p in inspect.signature(f).parameters
        if p.startswith("return_") and p != "return_trajectory"
    ]
    assert not flags, flags


def test_no_mutable_counters_on_objects():
    """Results: call counts travel in the result, not in attributes such as ``self.nfe``."""

    def on_self(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
        )

    hits = []
    for m, tree in TREES.items():
        for n in ast.walk(tree):
            if isinstance(n, ast.AugAssign) and on_self(n.target):
                hits.append(f"{m} line {n.lineno}: self.{n.target.attr} += ...")
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.BinOp):
                read = {a.attr for a in ast.walk(n.value) if on_self(a)}
                hits += [
                    f"{m} line {n.lineno}: self.{t.attr} = self.{t.attr} ..."
                    for t in n.targets
                    if on_self(t) and t.attr in read
                ]
    assert not hits, hits


# --- Losses -------------------------------------------------------------------------------


def test_losses_take_the_model_first_and_options_by_keyword():
    """Losses: ``loss(model, *batch, **options) -> Tensor | Loss``, fit for ``train``."""
    losses = {
        q: f
        for q, f in FUNCTIONS.items()
        if f.__name__.endswith("_loss") and f.__name__ not in NOT_TRAINING_LOSSES
    }
    assert len(losses) >= 7, sorted(losses)
    problems = []
    for q, f in losses.items():
        params = list(inspect.signature(f).parameters.values())
        if params[0].name not in {"model", "denoiser"}:
            problems.append(f"{q}: the first argument must be the model, got {params[0].name!r}")
        for p in params[1:]:
            if p.default is not inspect.Parameter.empty and p.kind is not inspect.Parameter.KEYWORD_ONLY:
                problems.append(f"{q}: option {p.name!r} must be keyword-only")
        if _return_annotation(f) not in {"torch.Tensor", "Loss"}:
            problems.append(f"{q}: must return torch.Tensor or Loss, got {_return_annotation(f)}")
    assert not problems, "\n".join(problems)


# --- Checks -------------------------------------------------------------------------------

SHARED_CHECKS = {
    n for n, f in vars(importlib.import_module("toyalgos.core.checks")).items() if n.startswith("check_")
}


def test_shared_checks_are_not_written_again():
    """Checks: families use ``core.checks``; none defines its own copy of a shared check."""
    copies = [
        f"{m}.{n.name}"
        for m, tree in TREES.items()
        if m != "toyalgos.core.checks"
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.name.lstrip("_") in SHARED_CHECKS
    ]
    assert not copies, copies
    messages = [
        m
        for m, p in SOURCES.items()
        if m != "toyalgos.core.checks" and "must be a positive int" in p.read_text()
    ]
    assert not messages, f"use check_positive_int: {messages}"


# --- Modes --------------------------------------------------------------------------------


def test_only_train_and_evaluating_switch_modes():
    """Modes: no ``.eval()`` / ``.train()`` outside ``core`` (use ``evaluating``); no ``torch._``."""
    switches = [
        f"{m} line {call.lineno}: .{_call_name(call)}()"
        for m, tree in TREES.items()
        if _family(m) != "core"
        for _, call in _functions_with_calls(tree)
        if isinstance(call.func, ast.Attribute)
        and call.func.attr in {"eval", "train"}
        and len(call.args) <= 1
    ]
    switches += [
        f"{m} line {n.lineno}: .training = ..."
        for m, tree in TREES.items()
        if _family(m) != "core"
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign)
        and any(isinstance(t, ast.Attribute) and t.attr == "training" for t in n.targets)
    ]
    assert not switches, "\n".join(switches)
    private = [m for m, p in SOURCES.items() if re.search(r"\btorch\._[A-Za-z]", p.read_text())]
    assert not private, private


# --- Rooms --------------------------------------------------------------------------------


def _imports(module: str, tree: ast.Module) -> Iterator[tuple[str, list[str], int]]:
    """(absolute module imported, names, line) for every toyalgos import of ``module``."""
    package = module if SOURCES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("toyalgos"):
                yield target, [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("toyalgos"):
                    yield a.name, [], node.lineno


def test_families_import_only_core_nn_and_themselves():
    """Rooms: nothing in a family imports another family; core and nn import no family."""
    bad = []
    for module, tree in TREES.items():
        own = _family(module)
        for target, _, line in _imports(module, tree):
            other = _family(target)
            if other and other != own and other not in SHARED:
                bad.append(f"{module} line {line} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_private_names_cross_modules():
    """Rooms: what two modules share is public in the module that owns it."""
    bad = [
        f"{module} line {line}: {name} from {target}"
        for module, tree in TREES.items()
        for target, names, line in _imports(module, tree)
        for name in names
        if name.startswith("_") and target != module
    ]
    assert not bad, "\n".join(bad)


def test_plotting_lives_in_plot_modules():
    """Rooms: only ``plot`` modules import matplotlib."""
    bad = [
        m
        for m, tree in TREES.items()
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        and any((getattr(n, "module", None) or a.name).startswith("matplotlib") for a in n.names)
        and not m.endswith(".plot")
    ]
    assert not bad, bad


def test_public_names_are_exported():
    """Rooms: every public function and class of a family is in its package's ``__all__``.

    Private modules (``_name.py``) and a family's own ``check_*`` validators are exempt.
    """
    missing = []
    for module in MODULES:
        if SOURCES[module.__name__].name == "__init__.py" or module.__name__.rsplit(".", 1)[1].startswith(
            "_"
        ):
            continue
        package_name, short = module.__name__.rsplit(".", 1)
        exported = set(getattr(importlib.import_module(package_name), "__all__", ()))
        if short in exported:  # the module itself is public (``core.checks``, ``diffusion.data``)
            continue
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if (
                (inspect.isfunction(obj) or inspect.isclass(obj))
                and name not in exported
                and not name.startswith("check_")
            ):
                missing.append(f"{module.__name__}.{name}")
    assert not missing, missing


@pytest.mark.parametrize("package", ["core", "nn", *FAMILIES])
def test_all_lists_only_real_names(package):
    pkg = importlib.import_module(f"toyalgos.{package}")
    assert not [n for n in pkg.__all__ if not hasattr(pkg, n)]


def test_families_with_many_modules_have_subpackages():
    """Rooms: about eight modules at most at a package's top level; more go into sub-packages."""
    crowded = {
        str(d.relative_to(SRC)): n
        for d in [SRC, *SRC.rglob("*")]
        if d.is_dir() and (d / "__init__.py").exists()
        if (n := len([p for p in d.glob("*.py") if not p.name.startswith("_")])) > 9
    }
    assert not crowded, crowded


# --- Names --------------------------------------------------------------------------------


FAMILY_MODULES = {"claims", "data"}  # module names that each family may have one of


def test_one_name_per_quantity():
    """Names: a sampler's step count is ``steps``; no two packages export different things under
    one name (sub-packages included: ``mdm_generate``, not a second ``generate``)."""
    old = [q for q, f in FUNCTIONS.items() if {"num_steps", "n_steps"} & set(inspect.signature(f).parameters)]
    assert not old, f"call it steps: {old}"
    owners: dict[str, tuple[str, object]] = {}
    clashes = []
    packages = [m for m in MODULES if SOURCES[m.__name__].name == "__init__.py" and m is not toyalgos]
    for package in packages:
        for name in package.__all__:
            obj = getattr(package, name)
            if inspect.ismodule(obj) and name in FAMILY_MODULES:
                continue  # every family has its own ``claims``, as every package has an ``__init__``
            if name in owners and owners[name][1] is not obj:
                clashes.append(f"{name}: {owners[name][0]} and {package.__name__}")
            owners.setdefault(name, (package.__name__, obj))
    assert not clashes, clashes


def test_every_module_postpones_annotations():
    """Annotations are read as written (``torch.Generator | None``), so every module postpones them."""
    missing = [
        m
        for m, tree in TREES.items()
        if tree.body
        and not any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body)
        and any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in tree.body)
    ]
    assert not missing, f"add 'from __future__ import annotations' to {missing}"


# --- Claims -------------------------------------------------------------------------------

ROOT = SRC.parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CLAIM_MODULES = [m for m in MODULES if m.__name__.endswith(".claims") and _family(m.__name__) != "core"]
CLAIM_FUNCTIONS = {
    name: f
    for m in CLAIM_MODULES
    for name, f in vars(m).items()
    if inspect.isfunction(f) and f.__module__ == m.__name__ and not name.startswith("_")
}
TEST_NAMES = {
    node.name
    for path in (ROOT / "tests").rglob("test_*.py")
    for node in ast.walk(ast.parse(path.read_text()))
    if isinstance(node, ast.FunctionDef)
}


def _notebook_code(path: Path) -> ast.Module:
    import json

    cells = json.loads(path.read_text())["cells"]
    lines = [
        line
        for c in cells
        if c["cell_type"] == "code"
        for line in "".join(c["source"]).splitlines()
        if not line.lstrip().startswith(("%", "!"))
    ]
    return ast.parse("\n".join(lines))


def test_claim_functions_return_a_claim_and_have_a_known_bad_test():
    """Claims: every claim function returns a ``Claim`` and a test named
    ``test_<function>_fails_...`` feeds it a known-bad case (a ring, a model scaled by 1.5, ...)."""
    assert CLAIM_FUNCTIONS, "no claim modules found"
    wrong_type = [n for n, f in CLAIM_FUNCTIONS.items() if _return_annotation(f) != "Claim"]
    assert not wrong_type, f"claim functions must return Claim: {wrong_type}"
    untested = [n for n in CLAIM_FUNCTIONS if not any(t.startswith(f"test_{n}_fails") for t in TEST_NAMES)]
    assert not untested, f"write a test_<name>_fails_on_<bad case> for {untested}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_assert_only_through_claim_functions(path):
    """Claims: a notebook asserts ``claims_hold([...])`` over its family's claim functions and
    nothing else: no hand-written comparison, no hand-made ``at_least``/``at_most``/``Claim``."""
    tree = _notebook_code(path)
    asserts = [n for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    assert asserts, f"{path.name} asserts no claim"
    bare = [
        n.lineno
        for n in asserts
        if not (isinstance(n.test, ast.Call) and getattr(n.test.func, "id", None) == "claims_hold")
    ]
    assert not bare, (
        f"{path.name}: an assert on code lines {bare} is not claims_hold(...); use a claim function"
    )
    called = {
        n.func.id if isinstance(n.func, ast.Name) else n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))
    }
    handmade = called & {"at_least", "at_most", "Claim"}
    assert not handmade, f"{path.name} builds claims by hand ({handmade}); add a claim function with a test"
    assert called & set(CLAIM_FUNCTIONS), f"{path.name} calls no claim function"
