"""``followup templates check``: every template parses, renders and uses only data it will get.

:func:`check_templates` returns every problem at once (never raises for bad templates), each
naming file and line:

- a template that does not parse, lacks ``subject`` or ``text``, or has an unknown block;
- a purpose with no template at all, and a client language that no template serves well: a
  client language is served by its own template, its base language's (``pt-BR`` by ``pt``) or a
  fallback declared in ``templates/fallbacks.toml``; landing on the team default or English by
  accident is reported. Reminders and escalations go to the team, so for them only the team
  default is checked;
- a variable or field outside the purpose's context contract (``client.nickname``);
- a template that fails to render with the sample data, with all optional fields and with
  none (each follow-up step too): a missing ``fallback`` shows up here, not in a client's inbox.

Purposes without a contract (a team's own folder) are parsed, but not rendered or checked
for variables, since nothing says what data they receive.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from jinja2 import Environment, TemplateSyntaxError, meta, nodes

from agent.compose import (
    CONTRACTS,
    FALLBACKS_FILE,
    INTERNAL_PURPOSES,
    LAST_RESORT,
    PROVIDED,
    Composer,
    Rendered,
    choose_language,
    dotted,
    field_names,
    field_schema,
    sample_context,
)
from agent.errors import Problem, TemplateError

# Names every template may use besides its contract: Jinja's own globals.
_JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "self"})


def check_templates(
    templates_dir: Path, client_languages: Iterable[str], team_default: str = LAST_RESORT
) -> list[Problem]:
    """Every problem with the templates under ``templates_dir``, in file order.

    ``client_languages`` are the BCP 47 tags the clients use (from the clients file and what
    detection found); ``team_default`` is the team's language. Returns ``[]`` when all is well.
    """
    composer = Composer(Path(templates_dir), team_default=team_default, strict=False)
    problems = list(composer.problems)
    if not composer.templates_dir.is_dir():
        return problems
    problems += fallback_problems(composer)
    problems += _coverage(composer, client_languages, team_default)
    for purpose in sorted(composer.purposes() & set(CONTRACTS)):
        for language in sorted(composer.languages(purpose)):
            path = composer.template_path(purpose, language)
            static = _contract_problems(composer, purpose, language, path)
            flagged = {(p.file, p.where) for p in static}
            problems += static
            # A render failure on a line the contract check already flagged says it again.
            problems += [
                p
                for p in _render_problems(composer, purpose, language)
                if (p.file, p.where) not in flagged
            ]
    return _unique(problems)


def preview(
    templates_dir: Path,
    purpose: str,
    language: str,
    team_default: str = LAST_RESORT,
    *,
    minimal: bool = False,
    step: int = 1,
) -> Rendered:
    """``purpose`` rendered for a ``language`` reader with the sample data, for a person to read.

    Raises ``TemplateError`` like :meth:`Composer.render`, and ``KeyError`` for a purpose
    without a contract.
    """
    composer = Composer(Path(templates_dir), team_default=team_default)
    context = sample_context(purpose, language=language, minimal=minimal)
    if purpose == "follow_up":
        context["step"] = step
    return composer.render(purpose, language, context)


def fallback_problems(composer: Composer) -> list[Problem]:
    """Declared fallbacks that lead nowhere: to a language no purpose has a template for (and
    that falls back no further), or round in a circle."""
    path = str(composer.templates_dir / FALLBACKS_FILE)
    declared = {k.strip().lower(): v.strip().lower() for k, v in composer.fallbacks.items()}
    spelled = {k.strip().lower(): k for k in composer.fallbacks}
    have = set().union(*(composer.languages(p) for p in composer.purposes()))
    known = {lang.lower() for lang in have}
    problems = []
    for key, target in declared.items():
        chain = [key, target]
        while chain[-1] in declared and chain[-1] not in chain[:-1]:
            chain.append(declared[chain[-1]])
        if chain[-1] in chain[:-1]:
            loop = " -> ".join(chain[chain.index(chain[-1]) :])
            problems.append(
                Problem(
                    path,
                    spelled[key],
                    f"the fallbacks go round in a circle ({loop}); end the chain at a language "
                    "that has templates",
                )
            )
        elif target not in known:
            languages = ", ".join(sorted(have))
            problems.append(
                Problem(
                    path,
                    spelled[key],
                    f"falls back to '{composer.fallbacks[spelled[key]]}', which has no templates; "
                    f"use a language the templates have ({languages}) or add its templates",
                )
            )
    return problems


def _coverage(
    composer: Composer, client_languages: Iterable[str], team_default: str
) -> list[Problem]:
    problems = []
    tags = sorted({t.strip() for t in client_languages if t and t.strip()})
    for purpose in sorted(CONTRACTS):
        folder = composer.templates_dir / purpose
        available = composer.languages(purpose)
        if not available:
            if folder.is_dir() and any(folder.glob("*.j2")):
                continue  # its templates failed to load, which is already reported
            problems.append(
                Problem(str(folder), "", f"no templates; add {purpose}/{team_default}.j2")
            )
            continue
        wanted = [team_default] if purpose in INTERNAL_PURPOSES else [team_default, *tags]
        # Files that exist but failed to load are reported with their own error and line.
        broken = {f.stem for f in folder.glob("*.j2")} - available
        declared = {k.lower(): v for k, v in composer.fallbacks.items()}
        for tag in wanted:
            if choose_language(available, tag, "", composer.fallbacks, last_resort=False):
                continue
            if choose_language(available | broken, tag, "", composer.fallbacks, last_resort=False):
                continue
            gets = choose_language(available, tag, team_default, composer.fallbacks)
            who = "the team" if tag == team_default else f"clients writing '{tag}'"
            falls = f"they would get '{gets}'" if gets else "no template would be found at all"
            have = ", ".join(sorted(available))
            target = declared.get(tag.lower()) or declared.get(tag.lower().split("-")[0])
            if target:
                fix = (
                    f"fallbacks.toml sends them to '{target}', but there is no "
                    f"{purpose}/{target}.j2. Add {purpose}/{target}.j2 or {purpose}/{tag}.j2, "
                    f"or point the fallback at a language {purpose} has ({have})"
                )
            else:
                fix = (
                    f'Add {purpose}/{tag}.j2, or declare `{tag} = "<lang>"` in fallbacks.toml '
                    f"with a language {purpose} has ({have})"
                )
            problems.append(Problem(str(folder), "", f"no template for {who}: {falls}. {fix}"))
    return problems


def _assigned(ast: nodes.Template) -> set[str]:
    names: set[str] = set()
    for node in ast.find_all((nodes.Assign, nodes.AssignBlock, nodes.For)):
        target: nodes.Node = cast(Any, node).target
        names |= {n.name for n in target.find_all(nodes.Name)}
        if isinstance(target, nodes.Name):
            names.add(target.name)
    for imp in ast.find_all(nodes.FromImport):
        names |= {n if isinstance(n, str) else n[1] for n in imp.names}
    names |= {imp.target for imp in ast.find_all(nodes.Import)}
    names |= {macro.name for macro in ast.find_all(nodes.Macro)}
    return names


def _lineno(ast: nodes.Template, name: str) -> int:
    for node in ast.find_all(nodes.Name):
        if node.name == name:
            return node.lineno
    return 0


def _imported_macros(
    composer: Composer, ast: nodes.Template
) -> dict[str, tuple[str, int, set[str]]]:
    """``{template name: (template, import line, names it defines)}`` for each
    ``{% from "…" import … %}`` / ``{% import "…" %}`` whose file exists and parses."""
    found: dict[str, tuple[str, int, set[str]]] = {}
    for node in ast.find_all((nodes.FromImport, nodes.Import)):
        imp: Any = node
        if not isinstance(imp.template, nodes.Const) or not isinstance(imp.template.value, str):
            continue
        name = imp.template.value
        file = composer.templates_dir / name
        try:
            tree = Environment().parse(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, TemplateSyntaxError, RecursionError):
            continue
        macros = {m.name for m in tree.body if isinstance(m, nodes.Macro)}
        macros |= {
            n.name
            for a in tree.body
            if isinstance(a, nodes.Assign)
            for n in a.target.find_all(nodes.Name)
        }
        found[name] = (name, imp.lineno, macros)
    return found


def _import_problems(composer: Composer, path: Path, ast: nodes.Template) -> list[Problem]:
    """An import of a file that does not exist, or of a name the file does not define, on the
    import's own line (Jinja would report a later line and a missing variable)."""
    problems = []
    shared = sorted(
        str(f.relative_to(composer.templates_dir)) for f in composer.templates_dir.glob("_*/*.j2")
    )
    macros = _imported_macros(composer, ast)
    for node in ast.find_all((nodes.FromImport, nodes.Import)):
        imp: Any = node
        if not isinstance(imp.template, nodes.Const) or not isinstance(imp.template.value, str):
            continue
        name = imp.template.value
        if not (composer.templates_dir / name).is_file():
            near = difflib.get_close_matches(name, shared, n=1)
            hint = (
                f"did you mean '{near[0]}'?"
                if near
                else f"shared files: {', '.join(shared) or 'none'}"
            )
            problems.append(
                Problem(
                    str(path), str(imp.lineno), f"imports '{name}', which does not exist; {hint}"
                )
            )
            continue
        if name not in macros or not isinstance(node, nodes.FromImport):
            continue
        defined = macros[name][2]
        for item in imp.names:
            wanted = item if isinstance(item, str) else item[0]
            if wanted in defined:
                continue
            near = difflib.get_close_matches(wanted, sorted(defined), n=1)
            problems.append(
                Problem(
                    str(path),
                    str(imp.lineno),
                    f"'{name}' has no macro '{wanted}'"
                    + (f"; did you mean '{near[0]}'?" if near else "")
                    + f" (it has: {', '.join(sorted(defined))})",
                )
            )
    return problems


def _contract_problems(
    composer: Composer, purpose: str, language: str, path: Path
) -> list[Problem]:
    ast = composer.ast(purpose, language)
    imports = _import_problems(composer, path, ast)
    macros = _imported_macros(composer, ast)
    top: dict[str, Any] = {**CONTRACTS[purpose], **PROVIDED}
    known = field_names(top)
    # Blocks compile to separate functions, so Jinja counts names set at the top of the file as
    # undeclared inside them; the composer runs the top first, so they are defined.
    used = meta.find_undeclared_variables(ast) - _assigned(ast)
    problems = imports
    for name in sorted(used - set(known) - _JINJA_GLOBALS):
        source = next((m for m in macros.values() if name in m[2]), None)
        if source is not None:
            problems.append(
                Problem(
                    str(path),
                    str(_lineno(ast, name)),
                    f"'{name}' is a macro in '{source[0]}' but is not imported; add it to the "
                    f"import on line {source[1]}",
                )
            )
            continue
        problems.append(
            Problem(
                str(path),
                str(_lineno(ast, name)),
                f"'{name}' is not in the {purpose} context (it has: {', '.join(sorted(known))})",
            )
        )

    loop_items: dict[str, Any] = {}
    for loop in ast.find_all(nodes.For):
        if isinstance(loop.target, nodes.Name):
            items = _resolve(top, dotted(loop.iter), loop_items, used)
            if isinstance(items, list) and items:
                loop_items[loop.target.name] = items[0]

    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        path_text = dotted(node)
        if not path_text:
            continue
        head, *rest = path_text.split(".")
        if head in used and head in known:
            schema: Any = field_schema(top, head)
        elif head in loop_items:
            schema = loop_items[head]
        else:
            continue  # a local {% set %} or a loop over something else
        walked = head
        for part in rest:
            if not isinstance(schema, dict):
                break  # a string's own methods (startswith) and the like
            fields = field_names(schema)
            if part not in fields:
                problems.append(
                    Problem(
                        str(path),
                        str(node.lineno),
                        f"'{walked}.{part}' is not in the {purpose} context "
                        f"({walked} has: {', '.join(sorted(fields))})",
                    )
                )
                break
            schema = field_schema(schema, part)
            walked = f"{walked}.{part}"
    return problems


def _resolve(
    top: Mapping[str, Any], path: str | None, loop_items: Mapping[str, Any], used: set[str]
) -> Any:
    if not path:
        return None
    head, *rest = path.split(".")
    if head in loop_items:
        schema: Any = loop_items[head]
    elif head in used and head in field_names(top):
        schema = field_schema(top, head)
    else:
        return None
    for part in rest:
        if not isinstance(schema, dict) or part not in field_names(schema):
            return None
        schema = field_schema(schema, part)
    return schema


def _render_problems(composer: Composer, purpose: str, language: str) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[str, str, str]] = set()
    steps = (1, 2, 3) if purpose == "follow_up" else (None,)
    for minimal in (False, True):
        for step in steps:
            context = sample_context(purpose, language=language, minimal=minimal)
            if step is not None:
                context["step"] = step
            try:
                composer.render_exact(purpose, language, context)
            except TemplateError as exc:
                note = " (with the optional fields left out)" if minimal else ""
                for p in exc.problems:
                    if (p.file, p.where, p.message) not in seen:
                        seen.add((p.file, p.where, p.message))
                        problems.append(Problem(p.file, p.where, p.message + note))
    return problems


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
