from __future__ import annotations

import pandas as pd
import pytest

from analysis.load import ratings_load
from analysis.simulate import ratings_simulate

# R's datasets::PlantGrowth (Dobson 1983): dried plant weight under a control and two treatments.
PLANT_GROWTH = {
    "ctrl": [4.17, 5.58, 5.18, 6.11, 4.50, 4.61, 5.17, 4.53, 5.33, 5.14],
    "trt1": [4.81, 4.17, 4.41, 3.59, 5.87, 3.83, 6.03, 4.89, 4.32, 4.69],
    "trt2": [6.31, 5.12, 5.54, 5.50, 5.37, 5.29, 4.92, 6.15, 5.80, 5.26],
}


@pytest.fixture
def plant_growth() -> pd.DataFrame:
    return pd.DataFrame(
        [{"group": group, "weight": w} for group, weights in PLANT_GROWTH.items() for w in weights]
    )


@pytest.fixture
def small_study() -> pd.DataFrame:
    """40 simulated participants, a clear completeness advantage of the CF condition."""
    return ratings_load(
        ratings_simulate(40, effects={"CF:original": {"completeness": 1.0}}, seed=11)
    )
