"""Engine: any of the engines, as the stages that run tasks name it."""

from mlmprep.core.engines.dask import DaskEngine
from mlmprep.core.engines.local import LocalEngine
from mlmprep.core.engines.ray import RayEngine

Engine = LocalEngine | DaskEngine | RayEngine  # each imports its cluster library on entry
