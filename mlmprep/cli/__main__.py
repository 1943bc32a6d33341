"""`python -m mlmprep.cli`: the same command line as `mlmprep`."""

from mlmprep.cli.main import main

main()
