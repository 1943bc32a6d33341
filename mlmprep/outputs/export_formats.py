"""The formats `mlmprep export` writes: a module of its own, so that the command line
lists them without loading the writers."""

FORMATS = ("nvidia-hdf5", "tfrecord")
