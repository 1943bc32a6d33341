"""Engines schedule per-unit and per-bucket functions; they know nothing of the algorithm."""

from mlmprep.core.engines.dask import DaskEngine
from mlmprep.core.engines.local import LocalEngine
from mlmprep.core.engines.ray import RayEngine

Engine = LocalEngine | DaskEngine | RayEngine  # each imports its cluster library on entry
