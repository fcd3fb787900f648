"""A model from values that were checked already, built as unpickling builds one.

`model_construct` cost ~14 µs a reading here, this ~5: used where the values come from a check
that already holds them to the model (the decoder's fast path; the rules process rebuilding what
the decoder handed over).
"""

from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_set = object.__setattr__


def from_checked(
    model_class: type[M],
    values: dict[str, Any],
    fields_set: Iterable[str],
    extra: dict[str, Any] | None = None,
) -> M:
    """`model_class` holding `values` (every field), `fields_set` the fields that were sent and
    `extra` the unknown ones — nothing validated again. The model takes `values`, and
    `fields_set` when it is a set, as they are (not copied): pass ones nothing else keeps."""
    model: M = model_class.__new__(model_class)
    # What `BaseModel.__setstate__` does, without building its state dict (a few tenths of a
    # µs per observation, in the parent and in the rules process: `python bench/journal.py`).
    sent = fields_set if fields_set.__class__ is set else set(fields_set)
    _set(model, "__pydantic_fields_set__", sent)
    _set(model, "__pydantic_extra__", {} if extra is None else extra)
    _set(model, "__pydantic_private__", None)
    _set(model, "__dict__", values)
    return model
