"""Every registered world, as pytest parameters: a world whose weights file is missing is skipped."""

from __future__ import annotations

import pytest

from neuralgym.world.catalog import all_specs

SPECS = [all_specs()[k] for k in sorted(all_specs())]
WORLDS = [
    pytest.param(
        s, id=s.key, marks=pytest.mark.skipif(not s.weights_path.is_file(), reason=f"no weights file {s.weights_path}")
    )
    for s in SPECS
]
