"""The plain record classes (``orchestrator/record.py``): a record's fields are its ``__slots__``, in order.

``==``, ``repr``, ``as_dict`` and the stored plan's JSON (``Plan.to_json``) read the fields in
``__slots__`` order, and callers pass them positionally in ``__init__`` order: the two must
agree (an import sorter or a hurried edit reordering ``__slots__`` would break stored plans).
"""

from __future__ import annotations

import inspect

import pytest

import orchestrator.dsl.inputs
import orchestrator.dsl.loader
import orchestrator.dsl.model
import orchestrator.dsl.types
import orchestrator.plan
from orchestrator.plan import Plan, PlannedInstance, PlannedNode, PlannedRelationship
from orchestrator.record import Record

MODULES = (orchestrator.dsl.inputs, orchestrator.dsl.loader, orchestrator.dsl.model, orchestrator.dsl.types,
           orchestrator.plan)
RECORDS = sorted({cls for module in MODULES for cls in vars(module).values()
                  if isinstance(cls, type) and issubclass(cls, Record) and cls is not Record},
                 key=lambda cls: cls.__qualname__)


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__qualname__)
def test_a_records_slots_are_its_init_arguments_in_order(cls: type[Record]) -> None:
    arguments = list(inspect.signature(cls.__init__).parameters)[1:]
    assert list(cls.__slots__) == arguments


def test_records_compare_by_field_and_a_plan_survives_its_json() -> None:
    rel = PlannedRelationship("t.rel", ["t.rel"], "p", "b", "b_0", {"x": 1})
    plan = Plan({"a": PlannedNode("a", "t.A", ["t.A"], "p", {"k": [1, 2]}, [], ["a_0"]),
                 "b": PlannedNode("b", "t.B", ["t.B"], None, {}, [], ["b_0"])},
                {"b_0": PlannedInstance("b_0", "b", None, []), "a_0": PlannedInstance("a_0", "a", None, [rel])},
                {"out": 1}, "bp.yaml", {"a": 1, "b": 1})
    again = Plan.from_json(plan.to_json())
    assert again == plan and again is not plan
    assert again.instances["a_0"].relationships[0] == rel
    assert again != Plan({}, {}, {})
    assert "target_id='b_0'" in repr(rel)
    with pytest.raises(TypeError):
        hash(rel)  # mutable, like the attrs classes they replace
