import sys

from herald_bench.cli import main

sys.exit(main())
