"""The formats `mlmprep export` writes, and the trainers that read them: a module of its
own, so that the command line lists them without loading the writers."""

FORMATS = {
    "mds": "MosaicML Streaming MDS shards (ModernBERT, mmBERT, EuroBERT; Composer)",
    "lddl": "LDDL balanced Parquet shards (NVIDIA's current BERT, lddl.torch)",
    "nvidia-hdf5": "NVIDIA DeepLearningExamples' HDF5 (its pre-2022 BERT trainer; mlmprep[hdf5])",
    "tfrecord": "Google BERT's tf.train.Example records (mlmprep[tfrecord])",
}
MDS_COMPRESSIONS = ("zstd",)
