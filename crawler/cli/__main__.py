"""`python -m crawler.cli`: the `crawler` command, as the tests and benchmarks run it."""

from crawler.cli import main

if __name__ == "__main__":
    main()
