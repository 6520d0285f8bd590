"""The mutation check's list stays in step with the code: every mutant applies and names tests that exist."""

import ast

import pytest

from tests.mutation import MUTANTS, ROOT, apply


def test_names_are_unique_and_each_mutant_changes_something():
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)
    assert all(m.old != m.new for m in MUTANTS)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_each_mutant_applies_once_and_still_parses(mutant, tmp_path):
    (tmp_path / mutant.file).parent.mkdir(parents=True)
    (tmp_path / mutant.file).write_text((ROOT / mutant.file).read_text())
    apply(mutant, tmp_path)
    ast.parse((tmp_path / mutant.file).read_text())  # a syntax error would be "killed" by any test


def test_each_mutants_tests_exist():
    for mutant in MUTANTS:
        for target in mutant.tests:
            path, _, name = target.partition("::")
            assert (ROOT / path).is_file(), f"{mutant.name}: no {path}"
            if name:
                functions = {node.name for node in ast.walk(ast.parse((ROOT / path).read_text()))
                             if isinstance(node, ast.FunctionDef)}
                assert name.split("[")[0] in functions, f"{mutant.name}: no test {target}"


def test_a_mutant_whose_text_moved_is_named(tmp_path):
    mutant = MUTANTS[0]
    (tmp_path / mutant.file).parent.mkdir(parents=True)
    (tmp_path / mutant.file).write_text("nothing of it here\n")
    with pytest.raises(ValueError, match=f"mutant {mutant.name}: its text occurs 0 times"):
        apply(mutant, tmp_path)
