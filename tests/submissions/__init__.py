"""A class of student submissions per assignment: correct ones in other styles, and one per
classic bug, each with the test cells it must fail. Every other test cell must score in full.

A submission is the released notebook with the instructor's solution in every solution cell,
except the cells replaced here (grade id -> source).

Each module here is named after an assignment and defines ``CLASS``: student -> (replaced
cells, the grade ids of the test cells that submission must fail).
"""

import importlib
import pkgutil

CLASSES = {
    module.name: importlib.import_module(f"{__name__}.{module.name}").CLASS
    for module in pkgutil.iter_modules(__path__)
}
