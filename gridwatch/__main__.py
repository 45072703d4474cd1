"""`python -m gridwatch`: the same CLI as the `gridwatch` console script."""

from gridwatch.cli import main

main()
