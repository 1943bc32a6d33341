"""mlmprep: raw text corpora to BERT pretraining data (NSP pairs + masked LM) in Parquet."""

__version__ = "0.1.0"
