"""`python -m adsearch` runs the command line."""

from adsearch.cli import main

main()
