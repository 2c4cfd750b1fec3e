"""Check that _ferroloop.pyi names every member of every native class, private ones included.

mypy.stubtest (run beside this by `make lint`) checks the signatures of what the stub names
and reports public names it lacks, but not a missing underscore-prefixed member: most of the
native module's surface is such members (the core's interface to the Python face), so a
method added in Rust could go unlisted. This compares each class's own attributes at runtime
with the members its class body in the stub defines.

    .venv/bin/python scripts/check_stub_members.py
"""

import ast
import os
import sys

import ferroloop._ferroloop as native

STUB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    'python', 'ferroloop', '_ferroloop.pyi')
# What every class has without its #[pymethods] defining it: the class docstring and module,
# and the repr (a pyo3 slot stubs leave to `object`).
IMPLICIT = {'__doc__', '__module__', '__repr__'}


def stub_members(tree):
    """{class name: names its body defines (methods, properties, attributes)}."""
    classes = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        names = set()
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(item.name)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                names.add(item.target.id)
        classes[node.name] = names
    return classes


def main():
    with open(STUB, encoding='utf-8') as f:
        classes = stub_members(ast.parse(f.read(), STUB))
    problems = []
    checked = 0
    for name in native.__all__:
        runtime = getattr(native, name)
        if not isinstance(runtime, type):
            continue
        if name not in classes:
            problems.append(f'{name}: class missing from the stub')
            continue
        checked += 1
        missing = sorted(set(vars(runtime)) - IMPLICIT - classes[name])
        if missing:
            problems.append(f'{name}: missing from the stub: {", ".join(missing)}')
    for problem in problems:
        print(f'{STUB}: {problem}', file=sys.stderr)
    if problems:
        return 1
    print(f'{os.path.basename(STUB)} names every member of the {checked} native classes')
    return 0


if __name__ == '__main__':
    sys.exit(main())
